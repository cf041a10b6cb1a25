package auth

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// GRPCOptions are the server options that put a gRPC server behind a: TLS
// credentials when tls_server_config is set, and interceptors that check
// the "authorization" metadata (basic or bearer, as over HTTP) against the
// role ClassifyGRPC gives the method. A nil Authenticator returns none.
func (a *Authenticator) GRPCOptions() []grpc.ServerOption {
	if a == nil {
		return nil
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if err := a.authorizeGRPC(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if err := a.authorizeGRPC(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return handler(srv, ss)
		}),
	}
	if tc := a.TLSConfig(); tc != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	return opts
}

func (a *Authenticator) authorizeGRPC(ctx context.Context, fullMethod string) error {
	need := ClassifyGRPC(fullMethod)
	md, _ := metadata.FromIncomingContext(ctx)
	var header string
	if v := md.Get("authorization"); len(v) > 0 {
		header = v[0]
	}
	roles, err := a.Authenticate(header)
	if err != nil {
		return status.Error(codes.Unauthenticated, "authentication required: send basic auth or a bearer token in the authorization metadata")
	}
	if !Allowed(roles, need) {
		return status.Errorf(codes.PermissionDenied, "this credential lacks the %s role needed for %s", need, fullMethod)
	}
	return nil
}
