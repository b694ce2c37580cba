// render: builds a kustomization as `kubectl apply -k` would (with kustomize's own library)
// and checks every object it makes against the Go types of the Kubernetes API, strictly, as
// an API server with strict field validation does: an unknown or misspelt field, a value of
// the wrong type or a field given twice is an error. The objects go to stdout as YAML, for
// deploy/check/k8s.mjs to validate against Kubernetes' schemas.
//
//	render DIR  > objects.yaml
package main

import (
	"fmt"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The kinds deploy/k8s uses; another one is an error until it is added here.
var kinds = map[string]func() any{
	"v1/ConfigMap":                       func() any { return new(corev1.ConfigMap) },
	"v1/Namespace":                       func() any { return new(corev1.Namespace) },
	"v1/Secret":                          func() any { return new(corev1.Secret) },
	"v1/Service":                         func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                  func() any { return new(corev1.ServiceAccount) },
	"apps/v1/DaemonSet":                  func() any { return new(appsv1.DaemonSet) },
	"apps/v1/Deployment":                 func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":                func() any { return new(appsv1.StatefulSet) },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return new(networkingv1.NetworkPolicy) },
	"policy/v1/PodDisruptionBudget":      func() any { return new(policyv1.PodDisruptionBudget) },
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: render KUSTOMIZATION-DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "render: %s: %v\n", dir, err)
		os.Exit(1)
	}
	bad := 0
	for _, r := range m.Resources() {
		id := fmt.Sprintf("%s/%s %s", r.GetApiVersion(), r.GetKind(), r.GetName())
		mk, ok := kinds[r.GetApiVersion()+"/"+r.GetKind()]
		if !ok {
			fmt.Fprintf(os.Stderr, "render: %s: %s: a kind render does not know (add it to kinds)\n", dir, id)
			bad++
			continue
		}
		data, err := r.MarshalJSON()
		if err != nil {
			fmt.Fprintf(os.Stderr, "render: %s: %s: %v\n", dir, id, err)
			bad++
			continue
		}
		strict, err := json.UnmarshalStrict(data, mk())
		if err != nil {
			fmt.Fprintf(os.Stderr, "render: %s: %s: %v\n", dir, id, err)
			bad++
		}
		for _, e := range strict {
			fmt.Fprintf(os.Stderr, "render: %s: %s: %v\n", dir, id, e)
			bad++
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
	out, err := m.AsYaml()
	if err != nil {
		fmt.Fprintf(os.Stderr, "render: %s: %v\n", dir, err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
