// Package observability holds platback's observability kit: Prometheus alert
// rules (alerts.yml) and a Grafana dashboard (grafana-dashboard.json) over the
// sidecar's metrics; its test checks that both name only metrics the sidecar
// really exports.
package observability
