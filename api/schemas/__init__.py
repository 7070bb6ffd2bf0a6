"""The API's request and response bodies, one module per feature
(``users``, ``items``, ``jobs``) and what they share (``common``). Routers
import their schemas from here, never from each other."""
