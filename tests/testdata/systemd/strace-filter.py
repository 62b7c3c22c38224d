# Reads `strace -f -qq` output on stdin and writes, per program (guardd daemon,
# guardd _signal-user, ...), the system calls it made, as JSON, to argv[1].
# Threads and forked children count for their program until they exec.
import sys, re, json, collections
line_re = re.compile(r'^(\d+) +(.*)$')
call_re = re.compile(r'^([a-z_0-9]+)\(')
resumed_re = re.compile(r'^<\.\.\. ([a-z_0-9]+) resumed>')
ret_re = re.compile(r'= (\d+)(?: <[^>]*>)?$')
label = {}           # pid -> current label (None = inherit from parent)
parent = {}          # pid -> parent pid
segs = collections.defaultdict(lambda: collections.Counter())  # (pid, label or ('inh',pid)) -> counter
cur = {}             # pid -> key of current segment
pending_exec = {}
gen = collections.Counter()
def key(pid):
    if pid not in cur:
        cur[pid] = ('inh', (pid, gen[pid]))
    return cur[pid]
def prog(path, argv):
    base = path.rsplit('/', 1)[-1]
    if base == 'guardd' and len(argv) > 1:
        a = argv[1]
        if a.startswith('_'): return 'guardd ' + a
        if a in ('check', 'version', 'default-policy', 'explain', 'demo'): return 'guardd ' + a
        return 'guardd daemon'
    return base
for raw in sys.stdin:
    m = line_re.match(raw.rstrip('\n'))
    if not m: continue
    pid, rest = int(m.group(1)), m.group(2)
    name = None
    if rest.startswith('+++ exited') or rest.startswith('+++ killed'):
        cur.pop(pid, None); gen[pid] += 1; continue
    mm = call_re.match(rest)
    if mm: name = mm.group(1)
    else:
        mm = resumed_re.match(rest)
        if mm: name = mm.group(1); resumed = True
        else: continue
    if call_re.match(rest): segs[key(pid)][name] += 1
    if name == 'execve' and call_re.match(rest):
        am = re.match(r'execve\("([^"]*)", \[(.*?)\]', rest)
        if am:
            argv = re.findall(r'"((?:[^"\\]|\\.)*)"', am.group(2))
            pending_exec[pid] = prog(am.group(1), argv)
    if name == 'execve' and (rest.endswith('= 0') or ' = 0 ' in rest or rest.endswith('= 0>')):
        if pid in pending_exec:
            cur[pid] = ('lab', pending_exec.pop(pid))
            segs[cur[pid]]['execve'] += 0
    if name in ('clone', 'clone3', 'fork', 'vfork'):
        r = ret_re.search(rest)
        if r and int(r.group(1)) > 0:
            child = int(r.group(1))
            parent[(child, gen[child])] = key(pid)
# resolve
def resolve(k, depth=0):
    while k[0] == 'inh' and depth < 1000:
        p = parent.get(k[1])
        if p is None: return '?'
        k = p; depth += 1
    return k[1] if k[0] == 'lab' else '?'
out = collections.defaultdict(collections.Counter)
for k, c in segs.items():
    out[resolve(k)].update(c)
with open(sys.argv[1], 'w') as f:
    json.dump({k: dict(v) for k, v in out.items()}, f, indent=1, sort_keys=True)
