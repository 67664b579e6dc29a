package kubernetes

import (
	"fmt"

	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NewClient returns a client for the cluster a kubeconfig names (its
// current context, or kubeContext), or, with no kubeconfig, for the
// cluster Phoenix runs in (its service account), then $KUBECONFIG and
// ~/.kube/config, as kubectl looks.
func NewClient(kubeconfig, kubeContext string) (k8s.Interface, *rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	var cfg *rest.Config
	var err error
	if kubeconfig == "" && kubeContext == "" {
		cfg, err = rest.InClusterConfig()
	}
	if cfg == nil {
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cli, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cli, cfg, nil
}
