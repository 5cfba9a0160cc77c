"""rollout: rolls the control-plane Deployment out after its Secrets change; keeps TCP status."""
