import autocannon from 'autocannon';
import { readFileSync } from 'node:fs';
const [url, conns, pid, path, untargeted] = process.argv.slice(2);
let i = 0;
const ch = ['webchat','messenger','whatsapp'];
const cpu = () => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return { u: Number(f[11]) * 10, s: Number(f[12]) * 10 }; };
const c0 = cpu();
const r = await autocannon({ url: url + path, connections: Number(conns), duration: 8,
  requests: [{ method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer pk_bench_adserver_0123456789abcdef' },
  setupRequest: (req) => ({ ...req, body: JSON.stringify({ user_id: `u_${(Math.floor(untargeted ? 990000 + Math.random()*10000 : Math.random()*990000)).toString(36).padStart(6,'0')}`, business_id: 'biz_bench', channel: ch[i++%3] }) }) }] });
const c1 = cpu();
const n = r.requests.total;
console.log(path, conns, 'req/s', Math.round(r.requests.average), 'p50', r.latency.p50, 'p99', r.latency.p99, 'non2xx', r.non2xx, 'cpu µs/req user', Math.round((c1.u - c0.u) * 1000 / n), 'sys', Math.round((c1.s - c0.s) * 1000 / n));
