import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A secret kept in a file of the data directory (mode 0600): the one there, else a random one made
 * now. Processes starting together agree on one secret: only the first write creates the file.
 */
export async function dataDirSecret(dataDir: string, name: string): Promise<string> {
  const path = join(dataDir, name);
  const existing = await readFile(path, 'utf8').then(
    (s) => s.trim(),
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    },
  );
  if (existing) return existing;
  await mkdir(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  try {
    await writeFile(path, `${secret}\n`, { flag: 'wx', mode: 0o600 });
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(path, 'utf8')).trim();
    throw err;
  }
}
