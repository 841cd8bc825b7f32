"""immichcheck: verify and benchmark a self-hosted Immich deployment on Kubernetes."""

__version__ = "0.1.0"
