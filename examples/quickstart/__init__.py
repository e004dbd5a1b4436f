"""The workflow README's "Your own workflow in five minutes" builds: refunds."""
