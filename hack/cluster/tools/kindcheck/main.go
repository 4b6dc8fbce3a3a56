// Command kindcheck decodes a kind cluster configuration strictly with kind's own v1alpha4 types:
// an unknown or misspelt field, or a value of the wrong type, is an error. kind itself cannot
// run on the build machine (no Docker), so this is how tests check kind-config.yaml.
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func main() {
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var cluster v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(data, &cluster); err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	if cluster.Kind != "Cluster" || cluster.APIVersion != "kind.x-k8s.io/v1alpha4" {
		fmt.Fprintf(os.Stderr, "invalid: kind %q apiVersion %q (want Cluster, kind.x-k8s.io/v1alpha4)\n", cluster.Kind, cluster.APIVersion)
		os.Exit(1)
	}
	out, _ := yaml.Marshal(cluster)
	fmt.Print(string(out))
}
