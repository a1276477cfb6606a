/** Lists of service names for people. */
import { naturalCompare } from '../rollout/plan-rollout.js';

/** `nginx, web-1…web-6`: sorted the way people number services, numbered runs compressed. */
export function compactNames(list: readonly string[]): string {
  const sorted = [...list].sort(naturalCompare);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    const m = /^(.*?)(\d+)$/.exec(sorted[i] as string);
    let j = i;
    if (m) {
      while (j + 1 < sorted.length) {
        const n = /^(.*?)(\d+)$/.exec(sorted[j + 1] as string);
        if (!n || n[1] !== m[1] || Number(n[2]) !== Number(m[2]) + (j + 1 - i)) break;
        j += 1;
      }
    }
    parts.push(j - i >= 2 ? `${sorted[i]}…${sorted[j]}` : sorted.slice(i, j + 1).join(', '));
    i = j + 1;
  }
  return parts.join(', ');
}

