"""A to-do list on every device, synced through a shared folder.

    python examples/todo.py --home ~/.todo --folder ~/Dropbox/todo add "call mum"
    python examples/todo.py --home ~/.todo list
    python examples/todo.py --home ~/.todo done 1
    python examples/todo.py --home ~/.todo watch
"""

import argparse
import uuid

import peerlog

parser = argparse.ArgumentParser(description="A to-do list synced through a shared folder.")
parser.add_argument("--home", default="~/.todo", help="this device's data")
parser.add_argument("--folder", help="the shared folder (remembered after the first time)")
parser.add_argument("command", choices=["add", "list", "done", "watch"])
parser.add_argument("text", nargs="?", help="the to-do (add) or its number (done)")
args = parser.parse_args()

with peerlog.connect(args.home, folder=args.folder) as device:
    todos = device.items("todos")
    if args.command == "add":
        device.put("todos", str(uuid.uuid4()), {"title": args.text, "done": False})
    elif args.command == "list":
        for n, (_, todo) in enumerate(todos, 1):
            print(f"{n}. [{'x' if todo['done'] else ' '}] {todo['title']}")
    elif args.command == "done":
        key, _ = todos[int(args.text) - 1]
        device.update("todos", key, {"done": True})  # a concurrent title edit is kept
    else:
        for batch in device.changes():
            for change in batch:
                print(f"{change.key}: {change.value}")
