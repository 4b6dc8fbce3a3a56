package netpol

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func pod(ns, name, ip string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
		Status: corev1.PodStatus{PodIP: ip, Phase: corev1.PodRunning},
	}
}

func namespace(name string, lbls map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

func render(state State) string {
	return Compute(state).Render(nil)
}

func podChain(rs *Ruleset, dir string, p *corev1.Pod) []string {
	return rs.Chains[chainName(dir, p.Namespace, p.Name, string(p.UID))]
}

func TestUnselectedPodsAreNotPoliced(t *testing.T) {
	a := pod("ns", "a", "10.244.0.2", map[string]string{"app": "a"})
	rs := Compute(State{Pods: []*corev1.Pod{a}, Namespaces: []*corev1.Namespace{namespace("ns", nil)}})
	if len(rs.Chains) != 1 || len(rs.Chains[MainChain]) != 1 {
		t.Fatalf("expected only the conntrack rule, got %v", rs.Chains)
	}
}

func TestDenyAllIsolatesBothDirections(t *testing.T) {
	a := pod("ns", "a", "10.244.0.2", map[string]string{"role": "plugin"})
	b := pod("ns", "b", "10.244.0.3", map[string]string{"role": "other"})
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "deny"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "plugin"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	rs := Compute(State{Pods: []*corev1.Pod{a, b}, Policies: []*networkingv1.NetworkPolicy{deny}})
	for _, dir := range []string{"I", "E"} {
		chain := podChain(rs, dir, a)
		if len(chain) != 3 || chain[len(chain)-1] != "-j DROP" {
			t.Fatalf("%s chain of the denied pod: %v", dir, chain)
		}
		if podChain(rs, dir, b) != nil {
			t.Fatalf("pod b is not selected but has a %s chain", dir)
		}
	}
	text := render(State{Pods: []*corev1.Pod{a, b}, Policies: []*networkingv1.NetworkPolicy{deny}})
	if !strings.Contains(text, "-A KUBECIRCUS-NETPOL -s 10.244.0.2/32") || !strings.Contains(text, "-d 10.244.0.2/32") {
		t.Fatalf("main chain does not dispatch pod a:\n%s", text)
	}
}

func TestPeersPortsAndIPBlocks(t *testing.T) {
	web := pod("web", "server", "10.244.0.10", map[string]string{"app": "web"})
	client := pod("clients", "c1", "10.244.0.11", map[string]string{"app": "client"})
	stranger := pod("clients", "c2", "10.244.0.12", map[string]string{"app": "stranger"})
	tcp := corev1.ProtocolTCP
	named := intstr.FromString("http")
	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "allow"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "clients"}},
						PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}},
					},
					{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &named}},
			}},
		},
	}
	state := State{
		Pods:       []*corev1.Pod{web, client, stranger},
		Namespaces: []*corev1.Namespace{namespace("web", nil), namespace("clients", map[string]string{"team": "clients"})},
		Policies:   []*networkingv1.NetworkPolicy{policy},
	}
	rs := Compute(state)
	chain := strings.Join(podChain(rs, "I", web), "\n")
	if !strings.Contains(chain, "-s 10.244.0.11/32 -p tcp --dport 8080 -j MARK") {
		t.Fatalf("client pod on the named port is not allowed:\n%s", chain)
	}
	if strings.Contains(chain, "10.244.0.12") {
		t.Fatalf("a pod the selector does not match is allowed:\n%s", chain)
	}
	block := chainName("B", "192.168.0.0/16", "192.168.1.0/24", "I")
	if got := strings.Join(rs.Chains[block], "\n"); got != "-s 192.168.1.0/24 -j RETURN\n-s 192.168.0.0/16 -j MARK --set-xmark 0x40000/0x40000" {
		t.Fatalf("ipBlock chain: %s", got)
	}
	if !strings.Contains(chain, "-p tcp --dport 8080 -j "+block) {
		t.Fatalf("ipBlock not reached with the port:\n%s", chain)
	}
	if podChain(rs, "E", web) != nil {
		t.Fatal("an ingress-only policy must not isolate egress")
	}
}

func TestStaleChainsAreDeleted(t *testing.T) {
	text := Compute(State{}).Render([]string{"KCNP-I-0000", "OTHER-CHAIN"})
	if !strings.Contains(text, ":KCNP-I-0000 - [0:0]\n") || !strings.Contains(text, "-X KCNP-I-0000\n") {
		t.Fatalf("stale chain not flushed and deleted:\n%s", text)
	}
	if strings.Contains(text, "OTHER-CHAIN") {
		t.Fatal("a chain this controller does not own was touched")
	}
}

func TestUnknownPodAddressesFailClosed(t *testing.T) {
	known := pod("ns", "a", "10.244.0.2", nil)
	rs := Compute(State{Pods: []*corev1.Pod{known}, PodCIDRs: []string{"10.244.0.0/16"}})
	src := strings.Join(rs.Chains["KCNP-GATE-SRC"], "\n")
	if !strings.HasPrefix(src, "-s 10.244.0.2/32 -j RETURN") || !strings.HasSuffix(src, "-j DROP") {
		t.Fatalf("source gate: %s", src)
	}
	main := strings.Join(rs.Chains[MainChain], "\n")
	if !strings.Contains(main, "-s 10.244.0.0/16 -j KCNP-GATE-SRC") || !strings.Contains(main, "-d 10.244.0.0/16 -j KCNP-GATE-DST") {
		t.Fatalf("main chain does not gate the pod network: %s", main)
	}
}
