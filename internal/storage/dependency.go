package storage

// Dependency is one edge of the service graph: the calls one service
// (Parent, the client) made to another (Child, the server) in a window.
// vigil's span metrics recorder pairs each client span with its server
// child into the traces_service_graph_* series these are read back from;
// the Jaeger API serves them as its dependencies.
type Dependency struct {
	Parent    string
	Child     string
	CallCount uint64
}
