#!/usr/bin/env python3
# Checks the relative links of README.md and docs/*.md: every file exists and
# every #anchor matches a heading (GitHub-style slugs). Run from the top of
# the repository: python3 test/doc_links.py
import re, os, sys
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
files = ['README.md'] + sorted('docs/'+f for f in os.listdir('docs') if f.endswith('.md'))
def slug(h):
    h = h.strip().lower()
    h = re.sub(r'[^\w\- ]', '', h)   # drop punctuation (keeps letters, digits, _, -, space)
    return h.replace(' ', '-')
anchors = {}
for f in files:
    seen = {}; out = set(); incode = False
    for line in open(f):
        if line.startswith('```'): incode = not incode; continue
        if incode: continue
        m = re.match(r'^(#{1,6})\s+(.*?)\s*$', line)
        if m:
            text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', m.group(2)).replace('`', '')
            sl = slug(text); n = seen.get(sl, 0); seen[sl] = n + 1
            out.add(sl if n == 0 else f'{sl}-{n}')
    anchors[os.path.normpath(f)] = out
bad = 0; count = 0
for f in files:
    text = open(f).read()
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    for m in re.finditer(r'\]\(([^)\s]+)\)', text):
        link = m.group(1); count += 1
        if re.match(r'^[a-z]+:', link): continue
        path, _, frag = link.partition('#')
        target = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else os.path.normpath(f)
        if not os.path.exists(target):
            print(f'{f}: missing file {link}'); bad += 1; continue
        if frag:
            if target not in anchors: print(f'{f}: anchor into non-md {link}'); bad += 1
            elif frag not in anchors[target]: print(f'{f}: missing anchor {link}'); bad += 1
print(f'{count} links checked, {bad} bad'); sys.exit(1 if bad else 0)
