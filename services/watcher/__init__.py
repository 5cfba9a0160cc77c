"""watcher: lists and watches Secrets, TCPs and DataStores and publishes what it sees."""
