"""issuer: mints certificates and kubeconfigs for rotate commands and writes the Secrets."""
