// Package backend is what every consensus backend does the same way: the
// vigil_cluster_* metrics and the wait in Campaign. It is internal to the
// consensus packages; consumers see only the consensus interfaces.
package backend
