/** Test helpers shared by the backend tests. */

/**
 * Position of a printable ASCII character (preceded by another printable one) whose first
 * occurrence in `text` is at that position — usable as a stop string that must cut `text` there
 * (the preceding character keeps multi-byte sequences from being split at the cut). -1 if none.
 */
export function freshStopPosition(text: string): number {
  for (let k = 1; k < text.length; k++) {
    if (/^[\x20-\x7e][\x21-\x7e]$/.test(text.slice(k - 1, k + 1)) && text.indexOf(text[k]) === k) return k;
  }
  return -1;
}
