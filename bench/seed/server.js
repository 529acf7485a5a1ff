// The seed design's own stack, written the way its diagram reads (Express API → auth check →
// number formatting → SQLite queue → queue processor, at most `concurrency` sends at once),
// with the sandbox's zero-delay send in place of WhatsApp. bench/compare.sh measures wa-gateway
// against it with the same harness, so it answers the parts of the API the harness uses:
//   POST /api/auth/login, POST /api/whatsapp/send-message, GET /api/whatsapp/status,
//   POST /api/whatsapp/queue/config, GET /api/whatsapp/jobs?status=completed&limit=1, GET /health
// It is generous to itself where the design is silent: counts are kept in memory (no COUNT(*)
// per status poll), statements are prepared once, and SYNC=NORMAL gives the "tuned" variant.
// Env: PORT, DB (file), SYNC (FULL | NORMAL), ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET.
'use strict';
const express = require('express');
const Database = require('better-sqlite3');
const bcrypt = require('bcryptjs');
const jwt = require('jsonwebtoken');
const crypto = require('crypto');

const port = Number(process.env.PORT || 3000);
const secret = process.env.JWT_SECRET || crypto.randomBytes(32).toString('hex');
const db = new Database(process.env.DB || 'seed.db');
db.pragma('journal_mode = WAL');
db.pragma(`synchronous = ${process.env.SYNC === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
db.exec(`
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, password TEXT, refresh_token TEXT);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, message_id TEXT UNIQUE, chat_id TEXT, number TEXT, message TEXT,
  status TEXT NOT NULL, priority INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT, run_at INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER,
  finished_at INTEGER);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (status, priority, run_at);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (status, finished_at);
`);
if (process.env.ADMIN_EMAIL) {
  db.prepare('INSERT OR IGNORE INTO users (email, password) VALUES (?, ?)')
    .run(process.env.ADMIN_EMAIL, bcrypt.hashSync(process.env.ADMIN_PASSWORD, 10));
}

const counts = { waiting: 0, active: 0, completed: 0, failed: 0 };
db.prepare("UPDATE jobs SET status = 'waiting' WHERE status = 'active'").run();
for (const r of db.prepare('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all()) {
  counts[r.status] = r.n;
}
const settings = { paused: false, concurrency: 3 };
const PRIORITY = { high: 0, normal: 1, low: 2 };

const insert = db.prepare(`INSERT INTO jobs (id, message_id, chat_id, number, message, status,
  priority, run_at, created_at) VALUES (?, ?, ?, ?, ?, 'waiting', ?, ?, ?)`);
const claim = db.prepare(`UPDATE jobs SET status = 'active', attempts = attempts + 1, updated_at = ?
  WHERE id = (SELECT id FROM jobs WHERE status = 'waiting' AND run_at <= ?
              ORDER BY priority, run_at LIMIT 1) RETURNING *`);
const complete = db.prepare(`UPDATE jobs SET status = 'completed', updated_at = ?, finished_at = ?
  WHERE id = ?`);
const retry = db.prepare(`UPDATE jobs SET status = ?, updated_at = ?, run_at = ?, last_error = ?,
  finished_at = ? WHERE id = ?`);
const lastFinished = db.prepare(`SELECT * FROM jobs WHERE status = ? ORDER BY finished_at DESC
  LIMIT ?`);

function formatNumber(raw) {
  let n = String(raw || '').replace(/\D/g, '');
  if (n.startsWith('0')) n = '62' + n.slice(1);
  if (!n.startsWith('62')) n = '62' + n;
  return n.length >= 10 && n.length <= 15 ? n : null;
}

// The sandbox: a send that succeeds on the next turn of the event loop.
const sandboxSend = () => new Promise((resolve) => setImmediate(resolve));

let active = 0;
function pump() {
  while (!settings.paused && active < settings.concurrency) {
    const now = Date.now();
    const job = claim.get(now, now);
    if (!job) return;
    active++;
    counts.waiting--;
    counts.active++;
    sandboxSend().then(() => {
      const t = Date.now();
      complete.run(t, t, job.id);
      counts.active--;
      counts.completed++;
    }, (err) => {
      const t = Date.now();
      const left = job.attempts < 5;
      retry.run(left ? 'waiting' : 'failed', t, t + 2000 * 2 ** (job.attempts - 1), String(err),
        left ? null : t, job.id);
      counts.active--;
      counts[left ? 'waiting' : 'failed']++;
    }).finally(() => {
      active--;
      pump();
    });
  }
}
setInterval(pump, 1000);

function auth(req, res, next) {
  const header = req.headers.authorization || '';
  try {
    req.user = jwt.verify(header.replace(/^Bearer /, ''), secret);
    next();
  } catch {
    res.status(401).json({ error: { code: 'unauthorized', message: 'invalid token' } });
  }
}

const app = express();
app.use(express.json({ limit: '100kb' }));
app.get('/health', (req, res) => res.json({ status: 'ok' }));
app.post('/api/auth/login', (req, res) => {
  const { email, password } = req.body || {};
  const user = db.prepare('SELECT * FROM users WHERE email = ?').get(email);
  if (!user || !bcrypt.compareSync(String(password || ''), user.password)) {
    return res.status(401).json({ error: { code: 'invalid_credentials', message: 'wrong email or password' } });
  }
  const accessToken = jwt.sign({ sub: user.id, email }, secret, { expiresIn: '15m' });
  res.json({ accessToken });
});
app.post('/api/whatsapp/send-message', auth, (req, res) => {
  const { number, message, priority = 'normal', messageId } = req.body || {};
  const formatted = formatNumber(number);
  if (!formatted || typeof message !== 'string' || !message) {
    return res.status(400).json({ error: { code: 'invalid_request', message: 'number and message are required' } });
  }
  const now = Date.now();
  const id = 'job_' + crypto.randomUUID().replace(/-/g, '');
  insert.run(id, messageId || id, formatted + '@c.us', formatted, message,
    PRIORITY[priority] ?? 1, now, now);
  counts.waiting++;
  setImmediate(pump);
  res.status(202).json({ jobId: id, status: 'waiting', number: formatted });
});
app.get('/api/whatsapp/status', auth, (req, res) => {
  res.json({ whatsapp: { state: 'connected' }, queue: { ...counts, paused: settings.paused } });
});
app.post('/api/whatsapp/queue/config', auth, (req, res) => {
  const { paused, concurrency } = req.body || {};
  if (typeof paused === 'boolean') settings.paused = paused;
  if (Number.isInteger(concurrency) && concurrency > 0) settings.concurrency = concurrency;
  setImmediate(pump);
  res.json(settings);
});
app.get('/api/whatsapp/jobs', auth, (req, res) => {
  const rows = lastFinished.all(req.query.status || 'completed', Number(req.query.limit || 20));
  res.json({
    jobs: rows.map((r) => ({
      id: r.id, status: r.status, attempts: r.attempts,
      finishedAt: r.finished_at && new Date(r.finished_at).toISOString(),
    })),
  });
});
app.listen(port, '127.0.0.1');
