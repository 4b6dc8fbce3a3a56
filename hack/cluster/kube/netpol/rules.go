// Package netpol enforces Kubernetes NetworkPolicy on a single node with iptables.
//
// It exists because the local test cluster must enforce NetworkPolicy for real (kubecircus's
// plug-in isolation depends on it) and the usual enforcers cannot be fetched on the build
// machine. It implements the networking.k8s.io/v1 semantics: pod, namespace and ipBlock peers
// (with except), ports with protocols, endPort and named ports, policyTypes, and egress to the
// node itself (so a policed pod cannot reach the API server through the node's address).
// Traffic from the node to its pods is always allowed, as the NetworkPolicy docs require.
//
// This file is the pure part: (pods, namespaces, policies) -> iptables-restore text.
package netpol

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

const (
	// MainChain is hooked into FORWARD and INPUT.
	MainChain = "KUBECIRCUS-NETPOL"
	// ChainPrefix marks every per-pod and per-ipBlock chain this controller owns.
	ChainPrefix = "KCNP-"
	allowMark   = "0x40000/0x40000"
	clearMark   = "0x0/0x40000"
)

// State is what the rules are computed from.
type State struct {
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
	Policies   []*networkingv1.NetworkPolicy
	// PodCIDRs fail closed: an address in them that belongs to no pod known to the API yet
	// (a pod whose IP the kubelet has not reported) may neither send nor receive. Without
	// this gate a new pod could talk before its policy rules exist.
	PodCIDRs []string
}

type direction int

const (
	ingress direction = iota
	egress
)

func (d direction) peerFlag() string {
	if d == ingress {
		return "-s"
	}
	return "-d"
}

func (d direction) podFlag() string {
	if d == ingress {
		return "-d"
	}
	return "-s"
}

func (d direction) letter() string {
	if d == ingress {
		return "I"
	}
	return "E"
}

// Ruleset is the filter-table content: chain name -> rules, in order.
type Ruleset struct {
	Chains map[string][]string
}

func (r *Ruleset) add(chain string, rule string) {
	r.Chains[chain] = append(r.Chains[chain], rule)
}

// Render gives iptables-restore input that rewrites every owned chain and deletes stale ones.
func (r *Ruleset) Render(existing []string) string {
	var names []string
	for name := range r.Chains {
		names = append(names, name)
	}
	sort.Strings(names)
	var stale []string
	for _, name := range existing {
		if _, ok := r.Chains[name]; !ok && strings.HasPrefix(name, ChainPrefix) {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, name := range append(names, stale...) {
		fmt.Fprintf(&b, ":%s - [0:0]\n", name)
	}
	for _, name := range names {
		for _, rule := range r.Chains[name] {
			fmt.Fprintf(&b, "-A %s %s\n", name, rule)
		}
	}
	for _, name := range stale {
		fmt.Fprintf(&b, "-X %s\n", name)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func chainName(kind string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return ChainPrefix + kind + "-" + strings.ToUpper(hex.EncodeToString(sum[:])[:16])
}

func running(pod *corev1.Pod) bool {
	return pod.Status.PodIP != "" && !pod.Spec.HostNetwork &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

func policyTypes(policy *networkingv1.NetworkPolicy) (bool, bool) {
	if len(policy.Spec.PolicyTypes) == 0 {
		return true, len(policy.Spec.Egress) > 0
	}
	var in, out bool
	for _, t := range policy.Spec.PolicyTypes {
		in = in || t == networkingv1.PolicyTypeIngress
		out = out || t == networkingv1.PolicyTypeEgress
	}
	return in, out
}

func selects(selector *metav1.LabelSelector, set map[string]string) bool {
	if selector == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return false // an invalid selector selects nothing
	}
	return s.Matches(labels.Set(set))
}

type portMatch struct {
	protocol string
	port     string // "" for all ports, "80" or "80:90"
}

func (p portMatch) args() string {
	if p.port == "" {
		return "-p " + p.protocol
	}
	return fmt.Sprintf("-p %s --dport %s", p.protocol, p.port)
}

// ports resolves a rule's ports for traffic to `target` (nil: the destination is not a pod, so
// named ports cannot match). A nil result with ok=true means "every port and protocol".
func ports(rulePorts []networkingv1.NetworkPolicyPort, target *corev1.Pod) (matches []portMatch, all bool) {
	if len(rulePorts) == 0 {
		return nil, true
	}
	for _, p := range rulePorts {
		protocol := "tcp"
		if p.Protocol != nil {
			protocol = strings.ToLower(string(*p.Protocol))
		}
		switch {
		case p.Port == nil:
			matches = append(matches, portMatch{protocol: protocol})
		case p.Port.Type == 0: // integer
			port := fmt.Sprint(p.Port.IntVal)
			if p.EndPort != nil {
				port = fmt.Sprintf("%d:%d", p.Port.IntVal, *p.EndPort)
			}
			matches = append(matches, portMatch{protocol, port})
		default: // named: look it up on the destination pod
			if target == nil {
				continue
			}
			for _, c := range target.Spec.Containers {
				for _, cp := range c.Ports {
					cpProtocol := "tcp"
					if cp.Protocol != "" {
						cpProtocol = strings.ToLower(string(cp.Protocol))
					}
					if cp.Name == p.Port.StrVal && cpProtocol == protocol {
						matches = append(matches, portMatch{protocol, fmt.Sprint(cp.ContainerPort)})
					}
				}
			}
		}
	}
	return matches, false
}

type index struct {
	pods       []*corev1.Pod
	namespaces map[string]map[string]string
}

func (ix index) peerPods(policyNS string, peer networkingv1.NetworkPolicyPeer) []*corev1.Pod {
	var out []*corev1.Pod
	for _, pod := range ix.pods {
		if peer.NamespaceSelector != nil {
			if !selects(peer.NamespaceSelector, ix.namespaces[pod.Namespace]) {
				continue
			}
		} else if pod.Namespace != policyNS {
			continue
		}
		if peer.PodSelector != nil && !selects(peer.PodSelector, pod.Labels) {
			continue
		}
		out = append(out, pod)
	}
	return out
}

// Compute turns the cluster state into the rules that enforce it.
func Compute(state State) *Ruleset {
	rs := &Ruleset{Chains: map[string][]string{MainChain: nil}}
	ix := index{namespaces: map[string]map[string]string{}}
	for _, ns := range state.Namespaces {
		ix.namespaces[ns.Name] = ns.Labels
	}
	for _, pod := range state.Pods {
		if running(pod) {
			ix.pods = append(ix.pods, pod)
		}
	}
	sort.Slice(ix.pods, func(i, j int) bool {
		return ix.pods[i].Namespace+"/"+ix.pods[i].Name < ix.pods[j].Namespace+"/"+ix.pods[j].Name
	})
	policies := append([]*networkingv1.NetworkPolicy(nil), state.Policies...)
	sort.Slice(policies, func(i, j int) bool {
		return policies[i].Namespace+"/"+policies[i].Name < policies[j].Namespace+"/"+policies[j].Name
	})
	rs.add(MainChain, "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN")
	if len(state.PodCIDRs) > 0 {
		gate(rs, ix.pods, state.PodCIDRs)
	}
	for _, dir := range []direction{egress, ingress} {
		for _, pod := range ix.pods {
			var selecting []*networkingv1.NetworkPolicy
			for _, policy := range policies {
				in, out := policyTypes(policy)
				if policy.Namespace == pod.Namespace && ((dir == ingress && in) || (dir == egress && out)) &&
					selects(&policy.Spec.PodSelector, pod.Labels) {
					selecting = append(selecting, policy)
				}
			}
			if len(selecting) == 0 {
				continue // not isolated in this direction
			}
			chain := chainName(dir.letter(), pod.Namespace, pod.Name, string(pod.UID))
			comment := fmt.Sprintf(`-m comment --comment "%s %s/%s"`, dir.letter(), pod.Namespace, pod.Name)
			rs.add(MainChain, fmt.Sprintf("%s %s/32 %s -j %s", dir.podFlag(), pod.Status.PodIP, comment, chain))
			rs.add(chain, "-j MARK --set-xmark "+clearMark)
			for _, policy := range selecting {
				podRules(rs, ix, chain, dir, pod, policy)
			}
			rs.add(chain, "-m mark --mark "+allowMark+" -j RETURN")
			rs.add(chain, "-j DROP")
		}
	}
	return rs
}

// gate sends traffic from or to an unknown address of the pod networks to DROP.
func gate(rs *Ruleset, pods []*corev1.Pod, cidrs []string) {
	for _, dir := range []struct{ flag, chain string }{{"-s", ChainPrefix + "GATE-SRC"}, {"-d", ChainPrefix + "GATE-DST"}} {
		for _, cidr := range cidrs {
			rs.add(MainChain, fmt.Sprintf("%s %s -j %s", dir.flag, cidr, dir.chain))
		}
		for _, pod := range pods {
			rs.add(dir.chain, fmt.Sprintf("%s %s/32 -j RETURN", dir.flag, pod.Status.PodIP))
		}
		rs.add(dir.chain, `-m comment --comment "pod not known yet" -j DROP`)
	}
}

func podRules(rs *Ruleset, ix index, chain string, dir direction, pod *corev1.Pod, policy *networkingv1.NetworkPolicy) {
	type rule struct {
		peers []networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
	}
	var rules []rule
	if dir == ingress {
		for _, r := range policy.Spec.Ingress {
			rules = append(rules, rule{r.From, r.Ports})
		}
	} else {
		for _, r := range policy.Spec.Egress {
			rules = append(rules, rule{r.To, r.Ports})
		}
	}
	mark := "-j MARK --set-xmark " + allowMark
	for _, r := range rules {
		if len(r.peers) == 0 { // every peer
			target := (*corev1.Pod)(nil)
			if dir == ingress {
				target = pod
			}
			emitPorts(rs, chain, "", r.ports, target, mark)
			if dir == egress { // named ports towards any peer pod
				for _, peer := range ix.pods {
					if hasNamedPort(r.ports) {
						emitPorts(rs, chain, fmt.Sprintf("-d %s/32", peer.Status.PodIP), onlyNamed(r.ports), peer, mark)
					}
				}
			}
			continue
		}
		for _, peer := range r.peers {
			if peer.IPBlock != nil {
				block := chainName("B", peer.IPBlock.CIDR, strings.Join(peer.IPBlock.Except, ","), dir.letter())
				if _, done := rs.Chains[block]; !done {
					for _, except := range peer.IPBlock.Except {
						rs.add(block, fmt.Sprintf("%s %s -j RETURN", dir.peerFlag(), except))
					}
					rs.add(block, fmt.Sprintf("%s %s %s", dir.peerFlag(), peer.IPBlock.CIDR, mark))
				}
				target := (*corev1.Pod)(nil)
				if dir == ingress {
					target = pod
				}
				emitPorts(rs, chain, "", r.ports, target, "-j "+block)
				continue
			}
			for _, other := range ix.peerPods(policy.Namespace, peer) {
				target := other
				if dir == ingress {
					target = pod
				}
				emitPorts(rs, chain, fmt.Sprintf("%s %s/32", dir.peerFlag(), other.Status.PodIP), r.ports, target, mark)
			}
		}
	}
}

func hasNamedPort(ps []networkingv1.NetworkPolicyPort) bool {
	return len(onlyNamed(ps)) > 0
}

func onlyNamed(ps []networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, p := range ps {
		if p.Port != nil && p.Port.Type != 0 {
			out = append(out, p)
		}
	}
	return out
}

func emitPorts(rs *Ruleset, chain, match string, rulePorts []networkingv1.NetworkPolicyPort, target *corev1.Pod, action string) {
	matches, all := ports(rulePorts, target)
	prefix := strings.TrimSpace(match + " ")
	if all {
		rs.add(chain, strings.TrimSpace(prefix+" "+action))
		return
	}
	for _, m := range matches {
		rs.add(chain, strings.TrimSpace(prefix+" "+m.args()+" "+action))
	}
}
