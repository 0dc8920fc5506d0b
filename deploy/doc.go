// Package deploy holds the configuration that docker-compose.yml at the
// repository root mounts into its containers: Prometheus (prometheus.yml),
// Alertmanager (alertmanager.yml), the brokers (broker.yaml), the ticket
// service (tickets.yaml) and templates of the secrets (secrets/*.example).
// It has no code; its test keeps the files valid for the tools that read them.
// docs/deploy.md describes the layout.
package deploy
