; DataUploader for Windows: a per-user installer (no administrator needed) around the one-folder PyInstaller app.
; Compiled on Linux or Windows by build/windows/make-installer.sh:
;   makensis -DVERSION=0.1.0 -DAPPDIR=<dist/datauploader> -DICON=<datauploader.ico> -DOUTFILE=<setup.exe> installer.nsi
; Installs to %LOCALAPPDATA%\Programs\DataUploader, adds a Start-menu entry, optionally starts the tray at login
; (the same HKCU Run value `datauploader autostart on` writes), and registers an uninstaller. The uninstaller
; removes the program only: the user's journal, config, logs and local catalogue live in
; %LOCALAPPDATA%\datauploader and are kept, so a reinstall resumes where the user left off.

; 64-bit installer (the app is 64-bit only): also runs under a 64-bit-only Wine, which has no 32-bit loader.
Target amd64-unicode
!include "MUI2.nsh"

!ifndef VERSION
  !error "define VERSION"
!endif
!ifndef APPDIR
  !error "define APPDIR (the frozen one-folder app)"
!endif
!ifndef OUTFILE
  !define OUTFILE "DataUploader-${VERSION}-setup.exe"
!endif

!define APPNAME "DataUploader"
!define UNINSTKEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\DataUploader"
!define RUNKEY "Software\Microsoft\Windows\CurrentVersion\Run"

Name "${APPNAME} ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\${APPNAME}"
InstallDirRegKey HKCU "${UNINSTKEY}" "InstallLocation"
RequestExecutionLevel user
!ifdef COMPRESSOR
  SetCompressor ${COMPRESSOR}   ; CI: zlib (seconds) instead of the release's solid LZMA (minutes, 30 % smaller)
!else
  SetCompressor /SOLID lzma
!endif
ShowInstDetails show
ShowUninstDetails show

!ifdef ICON
  !define MUI_ICON "${ICON}"
  !define MUI_UNICON "${ICON}"
!endif
!define MUI_FINISHPAGE_RUN "$INSTDIR\DataUploaderTray.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start DataUploader now"

!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APPNAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APPNAME} installer"
VIAddVersionKey "LegalCopyright" "BSD-3-Clause"

Section "DataUploader (required)" SecApp
  SectionIn RO
  ; An update replaces the bundle whole, so no file of an older version lingers (only what we put there:
  ; the user may have chosen a folder that holds other things).
  RMDir /r "$INSTDIR\_internal"
  SetOutPath "$INSTDIR"
  File /r "${APPDIR}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortcut "$SMPROGRAMS\${APPNAME}.lnk" "$INSTDIR\DataUploaderTray.exe" "" "$INSTDIR\DataUploaderTray.exe" 0
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayName" "${APPNAME}"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTKEY}" "Publisher" "${APPNAME}"
  WriteRegStr HKCU "${UNINSTKEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayIcon" "$INSTDIR\DataUploaderTray.exe"
  WriteRegStr HKCU "${UNINSTKEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoRepair" 1
SectionEnd

Section "Start DataUploader when I log in" SecLogin
  WriteRegStr HKCU "${RUNKEY}" "${APPNAME}" '"$INSTDIR\DataUploaderTray.exe"'
SectionEnd

LangString DESC_App ${LANG_ENGLISH} "The tray applet and the datauploader command (with rclone)."
LangString DESC_Login ${LANG_ENGLISH} "Start the tray at login (change later with 'datauploader autostart on|off')."
!insertmacro MUI_FUNCTION_DESCRIPTION_BEGIN
  !insertmacro MUI_DESCRIPTION_TEXT ${SecApp} $(DESC_App)
  !insertmacro MUI_DESCRIPTION_TEXT ${SecLogin} $(DESC_Login)
!insertmacro MUI_FUNCTION_DESCRIPTION_END

Section "Uninstall"
  DeleteRegValue HKCU "${RUNKEY}" "${APPNAME}"
  Delete "$SMPROGRAMS\${APPNAME}.lnk"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\datauploader.exe"
  Delete "$INSTDIR\DataUploaderTray.exe"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTKEY}"
  DetailPrint "Kept your journal, settings and logs in $LOCALAPPDATA\datauploader."
SectionEnd
