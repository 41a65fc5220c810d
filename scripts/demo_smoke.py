#!/usr/bin/env python3
"""Demo smoke check: a user on each IRC server and one on Matrix say a line; each must
reach the others."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_matrix import Matrix  # noqa: E402


class Client:
    def __init__(self, port, nick, channel):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""
        self.nick = nick
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick}")
        self.wait_for(lambda line: " 001 " in line, "welcome")
        self.send(f"JOIN {channel}")
        self.wait_for(lambda line: f"JOIN {channel}" in line or f"JOIN :{channel}" in line, "join")

    def send(self, line):
        self.sock.sendall((line + "\r\n").encode())

    def lines(self, deadline):
        while time.time() < deadline:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                text = line.decode("utf-8", "replace")
                if text.startswith("PING"):
                    self.send("PONG" + text[4:])
                    continue
                yield text
            self.sock.settimeout(max(0.1, deadline - time.time()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            if not data:
                return
            self.buf += data

    def wait_for(self, predicate, what, timeout=30):
        for line in self.lines(time.time() + timeout):
            if predicate(line):
                return line
        raise SystemExit(f"demo smoke: {self.nick} never saw {what}")


def main():
    east, west, matrix_url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    alice = Client(east, "alice", "#a")
    bob = Client(west, "bob", "#b")
    # The bridge joins on its own schedule: repeat until the first line crosses.
    deadline = time.time() + 30
    while True:
        alice.send("PRIVMSG #a :hello from east")
        try:
            got = bob.wait_for(lambda l: "hello from east" in l, "alice's line", timeout=2)
            break
        except SystemExit:
            if time.time() > deadline:
                raise
    print("west saw:", got)
    bob.send("PRIVMSG #b :hello from west")
    print("east saw:", alice.wait_for(lambda l: "hello from west" in l, "bob's line"))

    you = Matrix(matrix_url, "you", "demo")
    room = you.join("#demo:localhost")
    feed = you.messages(room)
    alice.send("PRIVMSG #a :hello matrix from east")
    deadline = time.time() + 30
    seen = []
    while not any("hello matrix from east" in body for _, body in seen):
        if time.time() > deadline:
            raise SystemExit(f"demo smoke: Matrix never saw alice's line; saw {seen}")
        seen.extend(next(feed))
    print("matrix saw:", [body for _, body in seen if "hello matrix" in body][0])
    you.say(room, "hello from matrix")
    print("east saw:", alice.wait_for(lambda l: "hello from matrix" in l, "the Matrix line"))
    print("demo smoke: OK")


if __name__ == "__main__":
    main()
