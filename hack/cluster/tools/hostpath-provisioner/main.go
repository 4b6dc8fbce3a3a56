// Command hostpath-provisioner provisions the local cluster's volumes (StorageClass "standard")
// as directories on its one node, and removes them when their claims are deleted.
//
// It is the local-path provisioner's job without its helper pods. local-path runs as a pod, so it
// cannot touch the node's disk itself: it starts a pod to make each directory and another to
// remove it, and every kubecircus job (one workspace volume) paid two extra pods for it, each
// with its sandbox, CNI calls and enforcer sync: 2 of the 5 pods a job cost on this cluster. This
// provisioner runs as a host process beside the kubelet and does both with one system call, on
// the same library local-path is built on (sig-storage-lib-external-provisioner).
//
// A directory is only ever <root>/<PV name>, made and removed by this process: Delete refuses a
// PersistentVolume whose path is anything else, whatever the object says, and removes with
// `rm -rf --one-file-system`, which follows no link (a pod that planted a symlink in its volume
// removes nothing outside it) and holds a bounded number of descriptors however deep the tree
// (os.RemoveAll holds one per level: a plug-in's 20,000-deep chain of directories would make
// every removal fail). The root is 0700: no local user walks into the volumes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v10/controller"
)

// Name is the StorageClass's provisioner field.
const Name = "kubecircus.io/host-path"

type hostPath struct {
	root string // the directory every volume is made in
	node string // the node this process runs on: the only one it can provision for
}

// dir is where the volume of a PersistentVolume named name lives, or an error for a name that is
// not one path element.
func (h *hostPath) dir(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("volume name %q is not a plain file name", name)
	}
	return filepath.Join(h.root, name), nil
}

func (h *hostPath) Provision(_ context.Context, opts controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	failed := func(format string, args ...any) (*v1.PersistentVolume, controller.ProvisioningState, error) {
		return nil, controller.ProvisioningFinished, fmt.Errorf(format, args...)
	}
	// Immediate binding (the StorageClass's): the cluster has one node, so there is no choice to
	// wait for, and the volume is made while the scheduler looks at the pod, not after.
	if opts.SelectedNode != nil && opts.SelectedNode.Name != h.node {
		return failed("node %s is not this provisioner's node %s", opts.SelectedNode.Name, h.node)
	}
	if opts.PVC.Spec.Selector != nil {
		return failed("a claim's selector is not supported")
	}
	for _, mode := range opts.PVC.Spec.AccessModes {
		if mode != v1.ReadWriteOnce && mode != v1.ReadWriteOncePod {
			return failed("access mode %s is not supported: a node directory is ReadWriteOnce", mode)
		}
	}
	dir, err := h.dir(opts.PVName)
	if err != nil {
		return failed("%v", err)
	}
	// Any user's pod writes there (pods run as their own non-root users); the umask is not asked.
	// Made again (the library may ask twice), it must still be a directory, never a link.
	if err := os.Mkdir(dir, 0o777); err != nil && !os.IsExist(err) {
		return nil, controller.ProvisioningInBackground, err
	}
	if info, err := os.Lstat(dir); err != nil || !info.IsDir() {
		return failed("%s is not a directory this provisioner made", dir)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, controller.ProvisioningInBackground, err
	}
	klog.InfoS("provisioned", "volume", opts.PVName, "claim", klog.KObj(opts.PVC), "path", dir)
	directory := v1.HostPathDirectory // made above: a missing one is an error, never made anew
	filesystem := v1.PersistentVolumeFilesystem
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: opts.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: *opts.StorageClass.ReclaimPolicy,
			AccessModes:                   opts.PVC.Spec.AccessModes,
			VolumeMode:                    &filesystem,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: opts.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: dir, Type: &directory},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{
					{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{h.node}},
				},
			}}}},
		},
	}, controller.ProvisioningFinished, nil
}

func (h *hostPath) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	dir, err := h.dir(pv.Name)
	if err != nil {
		return err
	}
	if pv.Spec.HostPath == nil || filepath.Clean(pv.Spec.HostPath.Path) != dir {
		return fmt.Errorf("volume %s does not name this provisioner's directory %s: not removing anything", pv.Name, dir)
	}
	if out, err := exec.Command("rm", "-rf", "--one-file-system", "--", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("removing %s: %v: %s", dir, err, out)
	}
	klog.InfoS("removed", "volume", pv.Name, "path", dir)
	return nil
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the provisioner's identity")
	root := flag.String("root", "", "directory the volumes are made in")
	node := flag.String("node", "", "name of the node this process runs on")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *root == "" || *node == "" {
		fmt.Fprintln(os.Stderr, "usage: hostpath-provisioner --kubeconfig FILE --root DIR --node NAME")
		os.Exit(2)
	}
	// The kubelet (root) mounts from the root; nobody else enters it, whatever it was made with.
	if err := errors.Join(os.MkdirAll(*root, 0o700), os.Chmod(*root, 0o700)); err != nil {
		klog.ErrorS(err, "cannot make the volume root", "root", *root)
		os.Exit(1)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.ErrorS(err, "cannot read the kubeconfig")
		os.Exit(1)
	}
	client := kubernetes.NewForConfigOrDie(config)
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		// Said aloud: an exit on a signal is otherwise silent, and the cluster's start-up
		// script can only report that the process is gone.
		klog.InfoS("stopping", "signal", (<-signals).String())
		cancel()
	}()
	provisioner := &hostPath{root: filepath.Clean(*root), node: *node}
	controller.NewProvisionController(klog.FromContext(ctx), client, Name, provisioner,
		controller.LeaderElection(false), // one node, one process
	).Run(ctx)
	klog.InfoS("stopped")
}
