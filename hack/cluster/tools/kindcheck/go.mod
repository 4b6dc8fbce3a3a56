module kubecircus.io/hack/cluster/tools/kindcheck

go 1.24.0

require (
	sigs.k8s.io/kind v0.27.0
	sigs.k8s.io/yaml v1.6.0
)

require (
	github.com/niemeyer/pretty v0.0.0-20200227124842-a10e7caefd8e // indirect
	github.com/pkg/errors v0.9.1 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	gopkg.in/check.v1 v1.0.0-20200902074654-038fdea0a05b // indirect
)
