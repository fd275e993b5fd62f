// Types for the part of seek-bzip (which ships no declarations) that io.ts uses.
declare module 'seek-bzip' {
  const Bunzip: { decode(input: Uint8Array, output?: Uint8Array): Buffer };
  export default Bunzip;
}
