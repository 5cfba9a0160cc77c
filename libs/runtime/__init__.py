"""What every service process needs: settings from the environment, JSON logs, a health and
metrics endpoint, and clean shutdown on SIGINT/SIGTERM."""
