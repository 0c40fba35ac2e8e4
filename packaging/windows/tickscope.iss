; Inno Setup 6 script: the Windows installer of the one-folder bundle in dist\tickscope.
;
;   python packaging\build.py                     (makes dist\tickscope\, tickscope.exe + tickscope-cli.exe)
;   iscc /DAppVersion=X.Y.Z packaging\windows\tickscope.iss
;
; The version comes from app\__init__.py through /DAppVersion (the CI workflow passes it);
; the result is dist\tickscope-<version>-windows-x86_64-setup.exe. Per-user install by
; default (no admin prompt), per-machine if the user picks it in the dialog.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z packaging\windows\tickscope.iss
#endif
#define Root "..\.."
#define Bundle Root + "\dist\tickscope"

[Setup]
AppId={{25F64248-CC69-4EF8-874F-316547F0DEA4}
AppName=Tickscope
AppVersion={#AppVersion}
AppVerName=Tickscope {#AppVersion}
AppPublisher=Tickscope developers
DefaultDirName={autopf}\Tickscope
DefaultGroupName=Tickscope
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#Root}\dist
OutputBaseFilename=tickscope-{#AppVersion}-windows-x86_64-setup
SetupIconFile={#Root}\resources\icons\tickscope.ico
UninstallDisplayIcon={app}\tickscope.exe
UninstallDisplayName=Tickscope {#AppVersion}
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
ChangesAssociations=yes
; Code signing placeholder: configure a sign tool in the IDE or with /S and uncomment.
; SignTool=signtool sign /fd sha256 /tr http://timestamp.digicert.com /td sha256 /f "$CERT_PFX" /p "$CERT_PASSWORD" $f

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "assockite"; Description: "Open .kite capture files with Tickscope"; GroupDescription: "File associations:"
Name: "openwithdat"; Description: "List Tickscope under ""Open with"" for .dat and .bin captures"; GroupDescription: "File associations:"

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Tickscope"; Filename: "{app}\tickscope.exe"; Comment: "Ingest Kite market-data captures"
Name: "{autoprograms}\Tickscope self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\tickscope-cli.exe"" selftest"; IconFilename: "{app}\tickscope.exe"
Name: "{autodesktop}\Tickscope"; Filename: "{app}\tickscope.exe"; Tasks: desktopicon

[Registry]
; A ProgID for captures; "gui" because bare paths are not subcommands of the CLI.
Root: HKA; Subkey: "Software\Classes\Tickscope.Capture"; ValueType: string; ValueName: ""; ValueData: "Kite WebSocket capture"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Tickscope.Capture\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\tickscope.exe,0"
Root: HKA; Subkey: "Software\Classes\Tickscope.Capture\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\tickscope.exe"" gui ""%1"""
; .kite is Tickscope's own extension: make it the default.
Root: HKA; Subkey: "Software\Classes\.kite"; ValueType: string; ValueName: ""; ValueData: "Tickscope.Capture"; Flags: uninsdeletevalue; Tasks: assockite
Root: HKA; Subkey: "Software\Classes\.kite\OpenWithProgids"; ValueType: string; ValueName: "Tickscope.Capture"; ValueData: ""; Flags: uninsdeletevalue; Tasks: assockite
; .dat/.bin belong to many programs: only offer Tickscope in "Open with", never take them over.
Root: HKA; Subkey: "Software\Classes\.dat\OpenWithProgids"; ValueType: string; ValueName: "Tickscope.Capture"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwithdat
Root: HKA; Subkey: "Software\Classes\.bin\OpenWithProgids"; ValueType: string; ValueName: "Tickscope.Capture"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwithdat
Root: HKA; Subkey: "Software\Classes\Applications\tickscope.exe"; ValueType: string; ValueName: "FriendlyAppName"; ValueData: "Tickscope"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\tickscope.exe\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\tickscope.exe"" gui ""%1"""
Root: HKA; Subkey: "Software\Classes\Applications\tickscope.exe\SupportedTypes"; ValueType: string; ValueName: ".kite"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\tickscope.exe\SupportedTypes"; ValueType: string; ValueName: ".dat"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\tickscope.exe\SupportedTypes"; ValueType: string; ValueName: ".bin"; ValueData: ""

[Run]
Filename: "{app}\tickscope.exe"; Description: "{cm:LaunchProgram,Tickscope}"; Flags: nowait postinstall skipifsilent
