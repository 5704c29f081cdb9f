// Package deploy holds the container image and the Kubernetes manifests of
// settle (k8s/), and the test that decodes every manifest strictly into the
// Kubernetes API types and checks the policies the job relies on. It has no
// code of its own.
package deploy
