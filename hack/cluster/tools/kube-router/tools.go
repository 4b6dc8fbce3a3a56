//go:build tools

// Package tools pins kube-router, the local cluster's NetworkPolicy enforcer (firewall only).
package tools

import _ "github.com/cloudnativelabs/kube-router/cmd/kube-router"
