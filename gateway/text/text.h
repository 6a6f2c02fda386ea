/*
 * text.h — text folding for FHIR string search (issue 4, item 4), the way
 * Japanese users expect: `ヤマダ`, `やまだ` and `ﾔﾏﾀﾞ` find the same patient.
 *
 * FHIR string search (R4 §3.1.1.4.8) is case- and accent-insensitive and, by
 * default, matches the start of the value; `:contains` matches anywhere;
 * `:exact` compares the value as it is. The search code folds the stored index
 * value AND the query value with text_fold() and then compares bytes:
 *
 *   default     fold(value) starts with fold(query)   (byte prefix)
 *   :contains   fold(query) is a substring of fold(value)
 *   :exact      no folding at all (JP Core: `:exact` keeps compatibility
 *               ideographs and widths apart)
 *
 * Byte comparison of folded text is sound because the output is UTF-8 in a
 * fixed form: a prefix/substring match never starts or ends inside a
 * character when the query itself is folded valid UTF-8 (UTF-8 is
 * self-synchronising). A prefix match can end inside a grapheme: `カ` is a
 * prefix of `ガ` only in decomposed text, and the output here is composed, so
 * `カ` does NOT find `ガ` (voicing is kept, see rule 5).
 *
 * ## The rules, in the order they apply (each with an example)
 *
 *  1. Input must be valid UTF-8 (shortest form, no surrogates, at most
 *     U+10FFFF). Anything else is TSG_EINVAL, and nothing is appended.
 *
 *  2. Compatibility normalisation (Unicode NFKC, through utf8proc):
 *       full-width ASCII   `ＡＢＣ１２３` → `abc123` (after rule 3)
 *       half-width kana    `ﾔﾏﾀﾞ` → `ヤマダ`, `ｶﾞ` → `ガ`, `ｰ` → `ー`
 *       enclosed/squared   `㈱` → `(株)`, `①` → `1`, `㍻` → `平成`, `㋿` → `令和`
 *       Roman numerals     `Ⅱ` → `ii` (not `二`)
 *       CJK compatibility ideographs with a canonical mapping fold to the
 *       unified one (U+F929 `朗` → U+6717 `朗`).
 *     The SPACING voiced sound marks `゛` U+309B and `゜` U+309C are first
 *     read as the combining ones U+3099/U+309A (NFKC alone would turn them
 *     into a space plus a mark): `カ゛` → `ガ`, `ハ゜` → `パ`.
 *
 *  3. Case folding (Unicode full case folding): `Yamada`, `YAMADA` and
 *     `yamada` → `yamada`; `Straße` → `strasse`; `ΣΊΣΥΦΟΣ` → `σίσυφοσ` then
 *     rule 4 → `σισυφοσ`.
 *
 *  4. Accents: every non-spacing or enclosing combining mark (general
 *     category Mn or Me) is removed: `José` → `jose`, `Müller` → `muller`,
 *     `Ångström` → `angstrom`. Spacing marks (Mc) are kept.
 *
 *  5. EXCEPT the kana voicing marks U+3099 (dakuten) and U+309A (handakuten),
 *     which are kept and composed: `ガ` ≠ `カ`, `パ` ≠ `バ` ≠ `ハ`,
 *     `ヴ` ≠ `ウ`. (JP Core's guide-stringSearch lists removing 濁点/半濁点
 *     as a SHOULD; we deliberately do not, because it merges different names:
 *     `ガトウ`/`カトウ`, `ババ`/`ハハ`.)
 *
 *  6. Ignorable and control characters are removed: default-ignorable code
 *     points (zero-width space U+200B, soft hyphen U+00AD, ZWJ U+200D, BOM
 *     U+FEFF, variation selectors U+FE00–FE0F and the ideographic variation
 *     selectors U+E0100–E01EF, so `葛󠄀` (葛 + IVS) → `葛`) and control
 *     characters other than whitespace (U+0000–U+001F, U+007F–U+009F).
 *
 *  7. Kana script: hiragana fold to KATAKANA (katakana is the superset —
 *     `ヷヸヹヺ` have no hiragana — and JP Core's kana names, SYL, are
 *     katakana): `やまだ` → `ヤマダ`, `ゔ` → `ヴ`, `ゟ` → `ヨリ` (by NFKC).
 *       - Iteration marks are folded to katakana but NOT expanded
 *         (REFERENCE-JP says nothing about them): `ゝ` → `ヽ`, `ゞ` → `ヾ`,
 *         so `いすゞ` = `イスヾ` but ≠ `いすず`. `々` is kept.
 *       - Small kana stay distinct from large ones (`キョウコ` ≠ `キヨウコ`,
 *         `ビョウイン` 病院 ≠ `ビヨウイン` 美容院), EXCEPT the counter/place
 *         name kana `ヵ` `ヶ` (and hiragana `ゕ` `ゖ`) → `カ` `ケ`, because
 *         `霞ヶ関` and `霞ケ関`, `一ヶ月` and `一ケ月` are the same words.
 *         (`霞が関` with `が` stays different.)
 *
 *  8. Whitespace: every run of white space — ASCII space, TAB, LF, VT, FF,
 *     CR, NEL, U+3000 ideographic space, no-break space and all other
 *     Unicode space separators (Zs, Zl, Zp) — becomes ONE ASCII space, and
 *     leading and trailing white space is dropped: `山田　太郎`,
 *     `山田 太郎`, `山田  太郎` and ` 山田\t太郎 ` → `山田 太郎`. White space
 *     is never removed between words: `山田太郎` ≠ `山田 太郎`.
 *
 *  9. Hyphens, dashes, minus signs and the long vowel mark are one class
 *     (REFERENCE-JP §2.7 and §5.3: NFKC leaves U+2212, U+30FC, U+2010
 *     alone, so they need their own table):
 *       U+002D -   U+2010 ‐  U+2011 ‑  U+2012 ‒  U+2013 –  U+2014 —
 *       U+2015 ―   U+2043 ⁃  U+2212 −  U+2E3A ⸺  U+2E3B ⸻  U+FE58 ﹘
 *       U+FE63 ﹣  U+FF0D －  U+30FC ー  U+FF70 ｰ  (and ⁻ ₋ via NFKC)
 *     Each becomes the long vowel mark `ー` U+30FC when the previous output
 *     character is kana (a katakana/hiragana letter, `ー`, `ヽ` `ヾ` `ヿ`, or
 *     a voicing mark), and ASCII `-` otherwise (after a digit, a Latin
 *     letter, a kanji, a space, or at the start):
 *       `ラーメン` = `ラ−メン` = `ﾗｰﾒﾝ` = `らーめん` → `ラーメン`
 *       `登呂１ー３ー５` = `登呂1-3-5` → `登呂1-3-5` (SS-MIX address)
 *       `本郷Ｘ−Ｘ−Ｘ` → `本郷x-x-x` (JP Core example address)
 *       `１２３‐４５６７` → `123-4567` (postal code)
 *     A hyphen right after kana therefore reads as a long vowel on both
 *     sides of the comparison: `コーポ-101` → `コーポー101` (a query
 *     `コーポ-101` folds the same way, so it still matches).
 *
 * 10. Wave dashes (the CP932 round-trip pair in JP Core's character-encoding
 *     guide) and their look-alikes become ASCII `~`: U+301C `〜`, U+FF5E `～`,
 *     U+3030 `〰`, U+2053 `⁓`: `9時〜17時` = `9時～17時` → `9時~17時`.
 *
 * ## Deliberately NOT folded
 *
 *   - Old/variant kanji (itaiji, 新字体⇔旧字体): REFERENCE-JP §2.7 names them
 *     only as a MAY without a list, so none are folded: `髙橋` ≠ `高橋`,
 *     `﨑` U+FA11 (a unified ideograph despite its block, NFKC keeps it) ≠
 *     `崎`. Add a table here (and bump TEXT_FOLD_VERSION) if a list arrives.
 *   - Numbers in other scripts: `二` ≠ `2` ≠ `ii`; `〇` ≠ `0`.
 *   - Punctuation other than rules 9–10: `・` (katakana middle dot), `，`
 *     → `,` by NFKC but `、` stays; `¥` and `\` stay apart.
 *   - Word segmentation: `山田太郎` does not find `山田 太郎`.
 *
 * ## Properties the search code may rely on
 *
 *   - fold(fold(x)) == fold(x) for all valid x (checked by fuzz_text).
 *   - The output is valid UTF-8, contains no NUL byte, no control character,
 *     no leading/trailing space and no two spaces in a row.
 *   - The output is at most 11 × the input's bytes (NFKC of U+FDFA: 3 bytes
 *     in, 33 out; checked over all code points), in practice about the
 *     input's length; the tsg_buf maximum bounds it (TSG_ELIMIT).
 *   - Input of any length is processed in chunks of about 1 KB in a stack
 *     buffer; only a pathological chunk (thousands of combining marks in a
 *     row) needs a temporary malloc. About 50 MB/s on Japanese values of
 *     64 bytes (-O2, one core).
 *   - The hyphen rule (9) looks at the preceding character, so a hyphen
 *     folds differently in a `:contains` query than inside a longer value:
 *     the value `ヤマダ-1` → `ヤマダー1` is not found by `:contains=-1`
 *     (→ `-1`), but is found by `:contains=ダ-1` and by the prefix `ヤマダ-`.
 */
#ifndef TSG_TEXT_H
#define TSG_TEXT_H

#include <stddef.h>

#include "../util/util.h"

/* The version of the rules above. Index values folded by one version must be
 * rebuilt when it changes (the store keeps it beside its string indexes). */
#define TEXT_FOLD_VERSION 1

/*
 * Appends the search-folded form of s[0..len) (UTF-8) to out, by the rules
 * above. s need not be NUL-terminated and may contain NUL bytes (removed).
 * len 0, or input that is only white space/ignorables, appends nothing and
 * returns TSG_OK.
 *
 * Returns TSG_OK; TSG_EINVAL when s is not valid UTF-8 (nothing is appended);
 * TSG_ELIMIT or TSG_ENOMEM when out reached its maximum or memory ran out (out
 * is then in its failed state, see tsg_buf, holding a partial result); the
 * same code, without doing anything, when out was already failed. The caller
 * owns out; nothing else is allocated beyond the call.
 */
tsg_rc text_fold(const char *s, size_t len, tsg_buf *out);

/*
 * As text_fold(), and on failure fills err (when not NULL): for invalid
 * UTF-8, code "value" and a message giving the byte offset of the first bad
 * byte ("invalid UTF-8 at byte 3 of the search text"); for the limit, code
 * "too-costly".
 */
tsg_rc text_fold_err(const char *s, size_t len, tsg_buf *out, tsg_error *err);

#endif
