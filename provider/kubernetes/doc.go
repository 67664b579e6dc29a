// Package kubernetes is the provider that runs Phoenix's replicas in a
// namespace of a secondary Kubernetes cluster, through client-go: one
// Deployment (one replica, Recreate), one Service and, for a spec with disk,
// one PersistentVolumeClaim per instance.
//
// EXPERIMENTAL: it has been tested against a real kube-apiserver and etcd
// (envtest), never against a cluster with nodes. What that leaves untested:
// that Pods start from the Deployment and become reachable at Instance.Addr
// (the Service's DNS name, or a NodePort); that the claim binds and keeps
// data across a Pod's restart; that the kubelet's and the scheduler's
// statuses (CrashLoopBackOff, Unschedulable) read as they are written in the
// tests; that the ResourceQuota controller's usage matches what Provision
// checks; and the time from Provision to a ready Pod. Mark it done only once
// the conformance suite has run on a live cluster.
//
// Objects are named from a hash of the instance ID and labelled with it,
// the owner (one Phoenix installation) and the component, so a new Provider
// after a restart finds, adopts or removes what the last one made. Offers
// are the schedulable nodes grouped by zone and instance type, less what
// runs on them and what this provider has placed there and not yet seen
// scheduled, and capped by the namespace's ResourceQuotas.
//
// RBAC it needs: in its namespace, get/list/create/delete on deployments
// (apps), services, persistentvolumeclaims, list on pods and resourcequotas;
// cluster-wide, list on nodes and pods (for Offers).
package kubernetes
