"""Recording one fixture: up to 3 attempts, each verified; the metadata
written to fixtures.json."""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import ca_decode

from .netns import run_in_netns
from .procs import apply_env, base_env, log
from .scenario import SCENARIOS, Ctx, have_module
from .verify import BAD, REFERENCE, REFERENCE_PATH, capinfo, compare, iostat_packets


def record_one(name, out, attempts=3):
    sc = SCENARIOS[name]
    for need in sc.needs:
        if need.startswith('module:'):
            if not have_module(need.split(':', 1)[1]):
                return None, f'python module {need[7:]} is not installed'
        elif shutil.which(need) is None:
            return None, f'{need} is not installed'
    last = None
    for attempt in range(1, attempts + 1):
        tmp = tempfile.mkdtemp(prefix=f'fixture-{name}-')
        ctx = Ctx(name, tmp)
        try:
            log(f'=== {name} (attempt {attempt})')
            if sc.netns and not os.environ.get('RECORD_IN_NETNS'):
                meta = run_in_netns(name, tmp)
            else:
                meta = sc.fn(ctx)
        except Exception as ex:  # noqa
            import traceback
            traceback.print_exc()
            last = f'{type(ex).__name__}: {ex}'
            continue
        finally:
            ctx.procs.stop_all()
            apply_env(base_env())
        meta['command'] = meta['command'].replace(ctx.tmpfile, name)
        summary = ca_decode.summary(ctx.tmpfile)
        problem = compare(name, meta, summary)
        if problem:
            log(f'{name}: attempt {attempt} rejected:\n{problem}')
            last = problem
            continue
        if meta.get('expected') is None and name not in REFERENCE:
            REFERENCE[name] = [(x[5], x[2], type(x[7]).__name__)
                               for x in summary if not x[6].startswith(BAD)]
            with open(REFERENCE_PATH, 'w') as f:
                json.dump(REFERENCE, f, indent=1)
        dest = os.path.join(out, name)
        shutil.copyfile(ctx.tmpfile, dest)
        if meta.get('parts'):          # (ring.pcapng: the files it joins)
            part_dir = os.path.join(out, os.path.dirname(meta['parts'][0]))
            shutil.rmtree(part_dir, ignore_errors=True)
            os.makedirs(part_dir)
            for part in meta['parts']:
                shutil.copyfile(os.path.join(tmp, os.path.basename(part)),
                                os.path.join(out, part))
        shutil.rmtree(tmp, ignore_errors=True)
        return finish_meta(name, dest, meta, summary), None
    return None, last


def finish_meta(name, path, meta, summary):
    info = capinfo(path)
    meta = {k: v for k, v in meta.items()
            if k not in ('check', 'expected')}
    meta['file'] = name
    meta['size_bytes'] = os.path.getsize(path)
    meta['packets'] = iostat_packets(path)
    meta['capinfos'] = {k: info.get(k) for k in (
        'File type', 'File encapsulation', 'File timestamp precision',
        'Packet size limit', 'Number of packets', 'Number of interfaces in '
        'file') if info.get(k)}
    meta['capinfos']['interfaces'] = [
        {k: v for k, v in i.items() if k in (
            'Name', 'Encapsulation', 'Capture length', 'Time precision',
            'Time ticks per second', 'Capture filter', 'Number of packets')}
        for i in info['interfaces']]
    meta['messages'] = [
        dict(frame=f, interface=int(i), transport=t, src=s, dst=d,
             direction=dr, message=text)
        for f, i, t, s, d, dr, text, c in summary]
    return meta
