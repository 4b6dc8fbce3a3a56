package netpol

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// hooks are the built-in chains that jump to MainChain: FORWARD sees pod-to-pod traffic (routed
// by the ptp CNI plug-in), INPUT sees pods talking to the node itself (API server, kubelet).
var hooks = []string{"FORWARD", "INPUT"}

// NewCommand is the `kube netpol` component.
func NewCommand() *cobra.Command {
	var kubeconfig string
	var resync time.Duration
	var podCIDRs []string
	cmd := &cobra.Command{
		Use:   "netpol",
		Short: "Enforce NetworkPolicy on this node with iptables",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), kubeconfig, resync, podCIDRs)
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of an identity that may list pods, namespaces, networkpolicies")
	cmd.Flags().DurationVar(&resync, "resync", 30*time.Second, "full re-apply period, repairing rules changed by hand")
	cmd.Flags().StringSliceVar(&podCIDRs, "pod-cidr", nil, "pod networks to fail closed on: unknown addresses there are dropped")
	return cmd
}

func run(ctx context.Context, kubeconfig string, resync time.Duration, podCIDRs []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, resync)
	pods := factory.Core().V1().Pods()
	namespaces := factory.Core().V1().Namespaces()
	policies := factory.Networking().V1().NetworkPolicies()
	wake := make(chan struct{}, 1)
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke(wake) },
		UpdateFunc: func(any, any) { poke(wake) },
		DeleteFunc: func(any) { poke(wake) },
	}
	for _, informer := range []cache.SharedIndexInformer{pods.Informer(), namespaces.Informer(), policies.Informer()} {
		if _, err := informer.AddEventHandler(notify); err != nil {
			return err
		}
	}
	factory.Start(ctx.Done())
	for kind, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache for %v never synced", kind)
		}
	}
	if err := ensureHooks(); err != nil {
		return err
	}
	klog.Info("netpol: enforcing NetworkPolicy")
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	for {
		podList, _ := pods.Lister().List(labels.Everything())
		nsList, _ := namespaces.Lister().List(labels.Everything())
		policyList, _ := policies.Lister().List(labels.Everything())
		state := State{Pods: podList, Namespaces: nsList, Policies: policyList, PodCIDRs: podCIDRs}
		if err := apply(Compute(state)); err != nil {
			klog.ErrorS(err, "netpol: applying rules failed; retrying")
			time.Sleep(time.Second)
			poke(wake)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			time.Sleep(20 * time.Millisecond) // coalesce bursts of events
		case <-ticker.C:
			_ = ensureHooks()
		}
	}
}

func poke(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

func ensureHooks() error {
	if out, err := exec.Command("iptables", "-w", "-N", MainChain).CombinedOutput(); err != nil &&
		!strings.Contains(string(out), "exists") {
		return fmt.Errorf("creating %s: %v: %s", MainChain, err, out)
	}
	for _, hook := range hooks {
		if exec.Command("iptables", "-w", "-C", hook, "-j", MainChain).Run() == nil {
			continue
		}
		if out, err := exec.Command("iptables", "-w", "-I", hook, "1", "-j", MainChain).CombinedOutput(); err != nil {
			return fmt.Errorf("hooking %s into %s: %v: %s", MainChain, hook, err, out)
		}
	}
	return nil
}

func ownedChains() ([]string, error) {
	out, err := exec.Command("iptables-save", "-t", "filter").Output()
	if err != nil {
		return nil, err
	}
	var chains []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, ":"+ChainPrefix) {
			chains = append(chains, strings.Fields(line[1:])[0])
		}
	}
	return chains, nil
}

var lastApplied string

func apply(rs *Ruleset) error {
	existing, err := ownedChains()
	if err != nil {
		return err
	}
	text := rs.Render(existing)
	if text == lastApplied && len(existing) == len(rs.Chains)-1 {
		return nil
	}
	cmd := exec.Command("iptables-restore", "-w", "--noflush")
	cmd.Stdin = bytes.NewBufferString(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %v: %s", err, out)
	}
	lastApplied = text
	klog.V(2).InfoS("netpol: rules applied", "chains", len(rs.Chains))
	return nil
}
