// Command etcd is etcd's own server/main.go, built from go.etcd.io/etcd/server/v3 through this wrapper
// module because the server module's replace directives make `go install` refuse it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
