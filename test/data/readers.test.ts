/** Corpus readers on small inline samples: tags, headers, encodings and HTML are stripped. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { brownCategory, cleanBrown, untagBrown } from '../../src/data/sources/brown.js';
import { cleanEmailBody, parseEmail, renderEmail } from '../../src/data/sources/email.js';
import { cleanGutenberg } from '../../src/data/sources/gutenberg.js';
import { htmlToText } from '../../src/data/sources/html.js';
import { decodeHeader, decodeQuotedPrintable, parseMime } from '../../src/data/sources/mime.js';
import { groupSentences, nlpCorpusSource, parseSentenceFile } from '../../src/data/sources/nlpcorpus.js';
import { cleanSotu, sotuTitle } from '../../src/data/sources/sotu.js';
import { emailCategory } from '../../src/data/sources/spamassassin.js';
import { parseSynsetLine, renderSynset } from '../../src/data/sources/wordnet.js';
import { chunkText, decodeLenient, unwrapParagraph } from '../../src/data/text.js';

test('Brown: part-of-speech tags are stripped and punctuation re-attached', () => {
  const line =
    "\tThe/at jury/nn said/vbd ``/`` it/pps deserves/vbz praise/nn ''/'' ,/, and/cc Atlanta's/np$ 1-1/2/cd mills/nns (/( new/jj )/) ./.";
  assert.equal(untagBrown(line), 'The jury said "it deserves praise", and Atlanta\'s 1-1/2 mills (new).');
  assert.equal(cleanBrown('\n\n\tA/at b/nn ./.\n\n\n\tC/np d/vbd ./.\n'), 'A b. C d.');
  assert.equal(brownCategory('a'), 'news');
  assert.equal(brownCategory('j'), 'wikipedia');
  assert.equal(brownCategory('k'), 'books');
});

test('Gutenberg: title line dropped, prose unwrapped, verse kept, emphasis underscores removed', () => {
  const raw =
    '[Emma by Jane Austen 1816]\n\nVOLUME I\n\nEmma Woodhouse, handsome, clever, and rich, with a comfortable home\n' +
    'and happy disposition, seemed to unite some of the _best_ blessings\nof existence.\n\n' +
    'Tyger Tyger, burning bright,\nIn the forests of the night;\n';
  const out = cleanGutenberg(raw);
  assert.ok(!out.includes('[Emma'));
  assert.ok(
    out.includes('Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition'),
  );
  assert.ok(out.includes('the best blessings of existence.'));
  assert.ok(out.includes('Tyger Tyger, burning bright,\nIn the forests'));
  assert.equal(unwrapParagraph('short\nlines'), 'short\nlines');
});

test('Gutenberg files in Latin-1 decode without replacement characters', () => {
  assert.equal(decodeLenient(Buffer.from([0x43, 0xe6, 0x73, 0x61, 0x72])), 'Cæsar');
  assert.equal(decodeLenient(Buffer.from('Cæsar', 'utf8')), 'Cæsar');
});

test('WordNet: a synset line becomes a glossary sentence with its examples', () => {
  const line =
    '00002098 00 a 02 unable 0 able(a) 0 002 = 05207437 n 0000 ! 00001740 a 0101 | (usually followed by `to\') not having the necessary means; "unable to get to town"; "unable to pay"  ';
  const s = parseSynsetLine(line)!;
  assert.deepEqual(s.words, ['unable', 'able']);
  assert.equal(s.definition, "(usually followed by `to') not having the necessary means");
  assert.deepEqual(s.examples, ['"unable to get to town"', '"unable to pay"']);
  assert.equal(
    renderSynset(s),
    'unable (adjective; also able): (usually followed by `to\') not having the necessary means. For example: "unable to get to town"; "unable to pay".',
  );
  assert.equal(parseSynsetLine('  1 This software and database is being provided'), undefined);
});

test('State of the Union: double spaces become paragraphs; file name becomes a title', () => {
  assert.equal(cleanSotu('First point.  Second point.  \n'), 'First point.\n\nSecond point.');
  assert.equal(
    sotuTitle('/x/2021_joseph_r_biden_d.txt'),
    'State of the Union address, Joseph R. Biden, 2021',
  );
});

const plainMail = [
  'From nobody Thu Aug 22 12:36:23 2002',
  'Return-Path: <a@example.com>',
  'Received: from localhost',
  '    by host with ESMTP',
  'From: Alice <alice@example.com>',
  'Subject: Re: [list] =?iso-8859-1?Q?Caf=E9?= talk',
  'In-Reply-To: <1@example.com>',
  'List-Id: <list.example.com>',
  'Content-Type: text/plain; charset=iso-8859-1',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'Bob wrote:',
  '> the quoted text',
  '> more quoted text',
  'I agree, the caf=E9 is nice and this line is so=',
  ' long it was wrapped.',
  '',
  '-- ',
  'Alice, signature',
  '_______________________________________________',
  'List mailing list',
  'https://lists.example.com/listinfo/list',
].join('\n');

test('mail: headers stripped, quoted-printable and encoded words decoded, quotes and signature removed', () => {
  const e = parseEmail(Buffer.from(plainMail, 'latin1'));
  assert.equal(e.subject, 'Re: [list] Café talk');
  assert.equal(e.from, 'alice@example.com');
  assert.ok(e.isReply);
  assert.ok(e.isList);
  assert.equal(e.body, 'I agree, the café is nice and this line is so long it was wrapped.');
  assert.equal(renderEmail(e), `Re: [list] Café talk\n\n${e.body}`);
  assert.equal(emailCategory('easy-ham-1', e), 'conversations');
  assert.equal(emailCategory('spam-2', e), 'webpages');
  assert.equal(emailCategory('easy-ham-1', { ...e, isReply: false }), 'forums');
  assert.equal(
    emailCategory('easy-ham-1', { ...e, isReply: false, from: 'rssfeeds@example.com' }),
    'webpages',
  );
});

test('mail: multipart/alternative prefers text/plain; base64 and charsets decode; attachments skipped', () => {
  const b64 = Buffer.from('Grüße aus Köln, a plain text part.', 'utf8').toString('base64');
  const mail = [
    `Subject: =?UTF-8?B?${Buffer.from('Grüße', 'utf8').toString('base64')}?=`,
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    'preamble is ignored',
    '--outer',
    'Content-Type: multipart/alternative; boundary=inner',
    '',
    '--inner',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    b64.slice(0, 20),
    b64.slice(20),
    '--inner',
    'Content-Type: text/html',
    '',
    '<p>HTML version</p>',
    '--inner--',
    '--outer',
    'Content-Type: application/octet-stream; name="x.bin"',
    'Content-Disposition: attachment; filename="x.bin"',
    'Content-Transfer-Encoding: base64',
    '',
    'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v',
    '--outer--',
  ].join('\r\n');
  const m = parseMime(Buffer.from(mail, 'latin1'));
  assert.deepEqual(m.plain, ['Grüße aus Köln, a plain text part.']);
  assert.equal(m.html.length, 1);
  const e = parseEmail(Buffer.from(mail, 'latin1'));
  assert.equal(e.subject, 'Grüße');
  assert.equal(e.body, 'Grüße aus Köln, a plain text part.');
});

test('mail: HTML-only mail is converted to text without tags, scripts or styles', () => {
  const mail = [
    'Subject: SALE',
    'Content-Type: text/html; charset="windows-1252"',
    '',
    '<html><head><style>p { color: red }</style><script>alert(1)</script></head>',
    '<body><h1>Big Sale</h1><p>Buy <b>now</b> &amp; save 50% &#8212; <a href="http://x.example/">click here</a></p>',
    '<table><tr><td>cell one</td><td>cell two</td></tr></table><img src="x.gif"></body></html>',
  ].join('\n');
  const e = parseEmail(Buffer.from(mail, 'latin1'));
  assert.ok(!/[<>]/.test(e.body), e.body);
  assert.ok(!e.body.includes('alert') && !e.body.includes('color'), e.body);
  assert.ok(e.body.includes('Big Sale'));
  assert.ok(e.body.includes('Buy now & save 50% — click here'), e.body);
  assert.ok(e.body.includes('cell one') && e.body.includes('cell two'));
  assert.equal(htmlToText('<p>a &lt;b&gt;</p>'), 'a <b>');
});

test('mail: a multipart body without a Content-Type header is still split into its parts', () => {
  const mail = [
    'Subject: broken',
    'MIME-Version: 1.0',
    '',
    'This is a multipart MIME message.',
    '',
    '--= Boundary 42',
    'Content-Type: text/plain',
    '',
    'the real text',
    '',
    '--= Boundary 42',
    'Content-Type: application/octet-stream',
    'Content-Transfer-Encoding: base64',
    '',
    'PCEtLSBCdWxsc2V5ZSBjb2RlIC0tPg0NCjxodG1sPg0NCjxoZWFkPg0NCiAg',
  ].join('\n');
  assert.equal(parseEmail(Buffer.from(mail)).body, 'the real text');
});

test('mail bodies: footers, sponsor blocks and base64 debris are removed', () => {
  const body = [
    'Real content here.',
    'QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB',
    '',
    '-------------------------------------------------------',
    'This sf.net email is sponsored by: ThinkGeek',
  ].join('\n');
  assert.equal(cleanEmailBody(body), 'Real content here.');
  assert.equal(decodeQuotedPrintable('a=3Db=\r\nc').toString(), 'a=bc');
  assert.equal(decodeHeader('=?utf-8?q?a_b?= =?utf-8?q?c?='), 'a bc');
});

test('chunkText cuts at paragraph, then sentence boundaries, losing nothing', () => {
  const paras = Array.from(
    { length: 30 },
    (_, i) => `Paragraph ${i} has a few words. And a second sentence.`,
  );
  const text = paras.join('\n\n');
  const chunks = chunkText(text, 200);
  assert.ok(chunks.length > 5);
  for (const c of chunks) assert.ok(c.length <= 200, `${c.length}`);
  assert.equal(chunks.join(''), text);
  const long = 'word '.repeat(500);
  const parts = chunkText(long, 100);
  assert.equal(parts.join(''), long);
  for (const p of parts) assert.ok(p.length <= 100);
});

test('nlp-corpus: sentence files parse, whitespace folds, non-strings and blanks are skipped', () => {
  const text = JSON.stringify(['  Hello\n there. ', 42, '', 'Second  one!']);
  assert.deepEqual(parseSentenceFile('doc-0.json', Buffer.from(text)), ['Hello there.', 'Second one!']);
  assert.throws(
    () => parseSentenceFile('doc-1.json', Buffer.from('{"a":1}')),
    /doc-1\.json: expected a JSON array/,
  );
  assert.throws(() => parseSentenceFile('doc-2.json', Buffer.from('[1,')), /doc-2\.json: not valid JSON/);
  assert.deepEqual(groupSentences(['a', 'b', 'c'], 2), ['a b', 'c']);
});

test('nlp-corpus: the installed package reads as webpages documents, files in numeric order', async () => {
  const src = nlpCorpusSource();
  assert.deepEqual(src.categories, ['webpages']);
  const seen: string[] = [];
  for await (const doc of src.read()) {
    assert.equal(doc.category, 'webpages');
    assert.ok(doc.text.length > 0);
    seen.push(doc.source);
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, ['nlp-corpus/doc-0.json#0', 'nlp-corpus/doc-0.json#1', 'nlp-corpus/doc-0.json#2']);
});
