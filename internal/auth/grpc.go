package auth

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// GRPCOptions are the server options that put a gRPC server behind a: TLS
// credentials when tls_server_config is set, and a tap handle and
// interceptors that check the "authorization" metadata (basic or bearer,
// as over HTTP) against the role ClassifyGRPC gives the method. A nil
// Authenticator returns none.
//
// The tap handle is what keeps unauthenticated calls from costing memory:
// it runs when a call's headers arrive, before the call exists, so a
// refused call's message is never read or inflated. Interceptors only run
// once the message is in memory (unary ones get it decoded). They stay as
// a second check, and cost nothing once the tap handle cached a basic
// credential. The tap handle runs on the connection's reading goroutine:
// a bcrypt comparison for an uncached basic credential holds up that one
// connection, which only slows a client guessing passwords. Only one tap
// handle can be installed on a server.
func (a *Authenticator) GRPCOptions() []grpc.ServerOption {
	if a == nil {
		return nil
	}
	opts := []grpc.ServerOption{
		grpc.InTapHandle(func(ctx context.Context, info *tap.Info) (context.Context, error) {
			return ctx, a.authorizeMD(info.Header, info.FullMethodName)
		}),
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
	md, _ := metadata.FromIncomingContext(ctx)
	return a.authorizeMD(md, fullMethod)
}

func (a *Authenticator) authorizeMD(md metadata.MD, fullMethod string) error {
	need := ClassifyGRPC(fullMethod)
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
