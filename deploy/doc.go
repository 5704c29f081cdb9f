// Package deploy holds the container image and the Kubernetes manifests of
// settle (k8s/: the common objects and the nightly CronJob; k8s/sharded/: the
// nightly CronJob of an Indexed Job instead; k8s/manual/: the re-run and
// backfill Jobs; prometheus/: the alert rules), the tests that decode every
// manifest strictly into the Kubernetes API types and check the policies
// and the configuration the job relies on (deploy_test.go, config_test.go),
// and the one that checks the alert rules name only metrics settle writes
// (and kube-state-metrics' of the manifests' Jobs).
// It has no code of its own.
package deploy
