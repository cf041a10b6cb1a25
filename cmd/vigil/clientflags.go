package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// apiFlags are the flags of a subcommand that calls a running server's
// API: where it is and, for a server with a web config
// (docs/security.md), the credential and the CA to trust.
type apiFlags struct {
	server, tokenFile, user, passFile string
	caFile                            string
}

// add registers the flags on fs; role names the role the credential needs.
func (f *apiFlags) add(fs *flag.FlagSet, serverUsage, role string) {
	fs.StringVar(&f.server, "server", "http://localhost:7070", serverUsage)
	fs.StringVar(&f.tokenFile, "bearer-token-file", "", "a file holding a bearer token with the "+role+" role")
	fs.StringVar(&f.user, "basic-auth-user", "", "a user with the "+role+" role (with --basic-auth-password-file)")
	fs.StringVar(&f.passFile, "basic-auth-password-file", "", "a file holding --basic-auth-user's password")
	fs.StringVar(&f.caFile, "ca-file", "", "the CA certificate that signed the server's TLS certificate")
}

// httpConfig checks the credential flags go together and returns the
// client configuration they make.
func (f *apiFlags) httpConfig() (commoncfg.HTTPClientConfig, error) {
	var c commoncfg.HTTPClientConfig
	if (f.user == "") != (f.passFile == "") || (f.user != "" && f.tokenFile != "") {
		return c, errors.New("give --basic-auth-user with --basic-auth-password-file, or --bearer-token-file, not both")
	}
	c.TLSConfig.CAFile = f.caFile
	if f.tokenFile != "" {
		c.Authorization = &commoncfg.Authorization{Type: "Bearer", CredentialsFile: f.tokenFile}
	}
	if f.user != "" {
		c.BasicAuth = &commoncfg.BasicAuth{Username: f.user, PasswordFile: f.passFile}
	}
	return c, nil
}

// client is the HTTP client for the server, named name in its User-Agent.
func (f *apiFlags) client(name string, timeout time.Duration) (*http.Client, error) {
	c, err := f.httpConfig()
	if err != nil {
		return nil, err
	}
	hc, err := commoncfg.NewClientFromConfig(c, name)
	if err != nil {
		return nil, err
	}
	hc.Timeout = timeout
	return hc, nil
}

// subcommand reads the first argument of a command with subcommands
// (vigil cluster, vigil config): the subcommand, and the role its
// credential needs from roles. done says the caller returns code at once:
// 0 after asked-for help, 2 after no or an unknown subcommand.
func subcommand(tool, usage string, args []string, stderr io.Writer, roles map[string]string) (cmd, role string, code int, done bool) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return "", "", 2, true
		}
		return "", "", 0, true
	}
	role, ok := roles[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", tool, args[0], usage)
		return "", "", 2, true
	}
	return args[0], role, 0, false
}

// apiFlagSet is a subcommand's flag set with the API flags and --timeout.
func apiFlagSet(name, role string, stderr io.Writer, timeout time.Duration, timeoutUsage string) (*flag.FlagSet, *apiFlags, *time.Duration) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := new(apiFlags)
	sf.add(fs, "the vigil server to ask", role)
	return fs, sf, fs.Duration("timeout", timeout, timeoutUsage)
}
