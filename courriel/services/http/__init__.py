"""The HTTP back end of a Mailbox server (DESIGN.md §2): 444 (TLS) and 81, behind the Client Access
HTTP proxy (clientaccess/http.py).

- `applications.py`: the web applications (Exchange's virtual directories) and their paths, which
  the front end routes by too;
- `identity.py`: who the front end says the user is, believed only from an organization server;
- `app.py`: the ASGI application: the trust gate, then one mount per web application;
- `whoami.py`: the endpoint each application answers with until it is built: who, where, what;
- `listener.py`: uvicorn on pre-bound sockets, with the TLS peer's organization identity per connection.
"""
