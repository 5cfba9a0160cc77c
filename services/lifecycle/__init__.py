"""lifecycle: turns the watcher's facts into rotate commands, on events and on timers."""
