#!/usr/bin/env python3
"""A minimal Matrix client for the demo (standard library only).

    demo_matrix.py URL USER PASSWORD ROOM watch       print what is said in ROOM
    demo_matrix.py URL USER PASSWORD ROOM say TEXT    say TEXT in ROOM
    demo_matrix.py URL USER PASSWORD ALIAS create     create a public room with that alias
"""
import json
import sys
import time
import urllib.parse
import urllib.request


class Matrix:
    def __init__(self, url, user, password):
        self.url = url.rstrip("/")
        self.token = None
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                "password": password}
        self.token = self.call("POST", "/_matrix/client/v3/login", body)["access_token"]
        self.txn = int(time.time() * 1000)

    def call(self, method, path, body=None, timeout=40):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")

    def room_id(self, alias):
        if alias.startswith("!"):
            return alias
        quoted = urllib.parse.quote(alias)
        return self.call("GET", f"/_matrix/client/v3/directory/room/{quoted}")["room_id"]

    def create(self, localpart):
        body = {"preset": "public_chat", "room_alias_name": localpart, "name": localpart}
        return self.call("POST", "/_matrix/client/v3/createRoom", body)["room_id"]

    def join(self, alias):
        quoted = urllib.parse.quote(alias)
        return self.call("POST", f"/_matrix/client/v3/join/{quoted}", {})["room_id"]

    def say(self, room, text):
        self.txn += 1
        path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/send/m.room.message/{self.txn}"
        return self.call("PUT", path, {"msgtype": "m.text", "body": text})["event_id"]

    def messages(self, room, since=None, timeout_ms=30000):
        """Yields, forever, the list of (sender, body) of each sync after the first."""
        params = {"timeout": "0" if since is None else str(timeout_ms)}
        while True:
            if since:
                params["since"] = since
            reply = self.call("GET", "/_matrix/client/v3/sync?" + urllib.parse.urlencode(params))
            first = since is None
            since = reply["next_batch"]
            params["timeout"] = str(timeout_ms)
            events = reply.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events", [])
            if not first:
                yield [(e["sender"], e["content"].get("body", "")) for e in events
                       if e.get("type") == "m.room.message"]


def main():
    url, user, password, room, command = sys.argv[1:6]
    client = Matrix(url, user, password)
    if command == "create":
        print(client.create(room.lstrip("#").split(":")[0]))
        return
    room_id = client.join(room)
    if command == "say":
        client.say(room_id, " ".join(sys.argv[6:]))
    elif command == "watch":
        print(f"watching {room} as {user} (Ctrl-C to stop)", flush=True)
        for batch in client.messages(room_id):
            for sender, body in batch:
                print(f"{sender}: {body}", flush=True)


if __name__ == "__main__":
    main()
