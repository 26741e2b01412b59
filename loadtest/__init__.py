"""The load test of issue #6: drive muster like kube-scheduler does and measure it."""
