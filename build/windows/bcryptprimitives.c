/*
 * bcryptprimitives.dll for Wine 8 — test scaffolding only, never shipped to Windows.
 *
 * Go >= 1.22 (rclone.exe >= 1.67) asks Windows for random bytes through bcryptprimitives!ProcessPrng and stops
 * at start when the DLL or the export is missing, which is the case in Wine 8. Real Windows 10/11 have it, so
 * this shim exists only so that our Windows code paths can be exercised under Wine: it answers ProcessPrng
 * from advapi32's RtlGenRandom (SystemFunction036), which Wine does implement.
 */
#include <windows.h>

typedef BOOLEAN(WINAPI *rtl_gen_random_fn)(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    static rtl_gen_random_fn rtl_gen_random;
    if (!rtl_gen_random) {
        HMODULE advapi = LoadLibraryA("advapi32.dll");
        if (!advapi)
            return FALSE;
        rtl_gen_random = (rtl_gen_random_fn)(void *)GetProcAddress(advapi, "SystemFunction036");
        if (!rtl_gen_random)
            return FALSE;
    }
    /* RtlGenRandom takes a ULONG length: feed large requests in pieces. */
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!rtl_gen_random(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
