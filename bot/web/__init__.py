"""HTTP pages of the server: status page and the web chat simulator."""
