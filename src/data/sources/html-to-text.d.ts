// Types for the parts of html-to-text (which ships no declarations) that html.ts uses.
declare module 'html-to-text' {
  export interface SelectorDefinition {
    selector: string;
    format?: string;
    options?: Record<string, unknown>;
  }
  export interface HtmlToTextOptions {
    wordwrap?: number | false | null;
    selectors?: SelectorDefinition[];
    limits?: { maxInputLength?: number; ellipsis?: string; maxDepth?: number };
    decodeEntities?: boolean;
  }
  export function convert(html: string, options?: HtmlToTextOptions): string;
}
