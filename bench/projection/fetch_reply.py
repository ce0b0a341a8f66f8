# Sends qmp_capabilities and query-named-block-nodes to a QMP socket and writes the reply line: fetch_reply.py SOCKET OUT flat|deep
import socket, json, sys, time
s = socket.socket(socket.AF_UNIX); 
for _ in range(50):
    try: s.connect(sys.argv[1]); break
    except OSError: time.sleep(0.1)
f = s.makefile('rwb')
f.readline()
def cmd(c, a=None):
    m = {"execute": c}
    if a is not None: m["arguments"] = a
    f.write((json.dumps(m) + "\n").encode()); f.flush()
    while True:
        l = f.readline()
        if b'"return"' in l[:20] or b'"error"' in l[:20]: return l
cmd("qmp_capabilities")
open(sys.argv[2], 'wb').write(cmd("query-named-block-nodes", {"flat": sys.argv[3] == "flat"}))
