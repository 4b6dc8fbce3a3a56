// Command coredns is CoreDNS with only the plug-ins the local cluster uses: it answers for the
// cluster domain from the Kubernetes API and has no forward plug-in, so no name ever leaves the
// machine (see HINTS-cluster.md: traffic stays on this machine).
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
)

// directives lists the compiled-in plug-ins in CoreDNS's execution order (core/dnsserver/zdirectives.go).
var directives = []string{"ready", "health", "errors", "log", "cache", "template", "kubernetes", "loop"}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
