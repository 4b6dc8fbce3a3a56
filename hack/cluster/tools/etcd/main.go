// Command etcd is the etcd v3.5 server, built from its Go module. Debian's etcd 3.4.23 is too old
// for kube-apiserver 1.34: its watch progress notifications break consistent reads from the
// watch cache ("Too large resource version" and stalled lists).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
