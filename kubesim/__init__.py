"""kubesim: a simulated Kubernetes cluster that serves the real API over HTTP."""
