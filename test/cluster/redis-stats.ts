// Reads redis-server's per-command call counts (INFO commandstats) over a bare RESP connection, to tell cache hits from store reads.
import { connect } from 'node:net';

/** Sends one RESP command and resolves with the bulk-string reply. */
function requestBulk(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = Buffer.alloc(0);
    socket.setTimeout(2000, () => {
      socket.destroy();
      reject(new Error('redis did not answer INFO within 2 s'));
    });
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const header = data.indexOf('\r\n');
      if (header < 0) return;
      if (data[0] !== 0x24) {
        socket.destroy();
        reject(new Error(`unexpected redis reply: ${data.toString().slice(0, 80)}`));
        return;
      }
      const length = Number(data.subarray(1, header).toString());
      if (data.length < header + 2 + length) return;
      socket.destroy();
      resolve(data.subarray(header + 2, header + 2 + length).toString());
    });
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

/**
 * Total calls of Lua-script commands so far (EVAL + EVALSHA). The store reads a session with a script,
 * so while nothing is appended, the growth of this count is the number of session reads that reached Redis.
 */
export async function countScriptCalls(port: number): Promise<number> {
  const info = await requestBulk(port, ['INFO', 'commandstats']);
  let total = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval|evalsha_ro|eval_ro):calls=(\d+)/gm)) total += Number(m[2]);
  return total;
}
