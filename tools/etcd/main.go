// Command etcd is etcd's server built from the go.etcd.io/etcd/server/v3 module; see
// tools/build-tools.sh. It does what the main package at the root of etcd's repository does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
