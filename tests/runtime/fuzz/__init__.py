"""The fuzz of the codec and of both planes' handlers, driven through the supervisor's own
core: the world it runs in, the frames it feeds, what the planes should do with them, and
what must hold after each."""
