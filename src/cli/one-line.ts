/**
 * Text a peer chose (a payload, a close reason, an error message) made fit for one line of a
 * listing: line breaks, tabs and other control characters are shown as `\n`, `\t`, `\xHH`, so
 * a row stays one line and nothing reaches the operator's terminal as a control sequence.
 */
export function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : c === '\r' ? '\\r' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}
