"""muster: a kube-scheduler extender for gangs, batching of identical pods, and queue quotas."""

__version__ = "0.1.0"
